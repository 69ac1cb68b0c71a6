"""The documented examples, run against the real server when their frameworks are installed
(they are not in the default test environment, to keep it small)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from sentinel_sdk import AsyncClient, Client

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_langchain_tool(memory_server, agent):
    pytest.importorskip("langchain_core")
    example = load("langchain_tool")
    with Client(memory_server.target) as client:
        pay_invoice = example.make_pay_invoice_tool(client, agent_id=agent)
        assert set(pay_invoice.args) == {"amount", "vendor"}
        assert pay_invoice.invoke({"amount": 420, "vendor": "AWS"}).startswith("paid 420")
    # Policy approved it with the tool's arguments as the payload.
    intents = memory_server.operator().list(agent)
    assert len(intents) == 1 and dict(intents[0].payload) == {"amount": 420, "vendor": "AWS"}


async def test_openai_agents_tool(memory_server, agent):
    pytest.importorskip("agents")
    from agents.tool_context import ToolContext

    example = load("openai_agents_tool")
    async with AsyncClient(memory_server.target) as client:
        restart_server = example.make_restart_tool(client, agent_id=agent)
        assert set(restart_server.params_json_schema["properties"]) == {"server", "environment"}
        arguments = json.dumps({"server": "web-1", "environment": "staging"})
        ctx = ToolContext(
            context=None,
            tool_name=restart_server.name,
            tool_call_id="call-1",
            tool_arguments=arguments,
        )
        ok = await restart_server.on_invoke_tool(ctx, arguments)
        assert ok.startswith("restarted web-1")
    intents = memory_server.operator().list(agent)
    assert len(intents) == 1 and dict(intents[0].payload)["environment"] == "staging"
