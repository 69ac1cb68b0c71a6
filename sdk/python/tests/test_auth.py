"""API keys: the SDK sends ``authorization: Bearer <key>`` and maps refusals to typed errors."""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, Iterator

import pytest

import sentinel_sdk
from sentinel_sdk import Client

from conftest import Server

AGENT_KEY = secrets.token_urlsafe(24)
OPERATOR_KEY = secrets.token_urlsafe(24)
SMALL_INVOICE = {"amount": 420, "vendor": "AWS"}


@pytest.fixture(scope="module")
def keyed_server() -> Iterator[Server]:
    keys: Dict[str, str] = {
        "SENTINEL_API_KEYS": f"agent:billing-bot={AGENT_KEY};operator:alice={OPERATOR_KEY}"
    }
    s = Server(keys)
    yield s
    s.stop()


def test_the_agents_key_submits_as_that_agent(keyed_server):
    with Client(keyed_server.target, api_key=AGENT_KEY) as client:
        assert client.guard("billing-bot", "PAY_INVOICE", SMALL_INVOICE).approved


def test_the_key_comes_from_the_environment(keyed_server, monkeypatch):
    monkeypatch.setenv("SENTINEL_API_KEY", AGENT_KEY)
    with Client(keyed_server.target) as client:
        assert client.guard("billing-bot", "PAY_INVOICE", SMALL_INVOICE).approved


@pytest.mark.parametrize("key", [None, "not-a-key"])
def test_a_missing_or_wrong_key_is_unauthenticated(keyed_server, key, monkeypatch):
    monkeypatch.delenv("SENTINEL_API_KEY", raising=False)
    with Client(keyed_server.target, api_key=key) as client:
        with pytest.raises(sentinel_sdk.Unauthenticated):
            client.guard("billing-bot", "PAY_INVOICE", SMALL_INVOICE)


def test_an_agent_key_cannot_submit_as_another_agent(keyed_server):
    with Client(keyed_server.target, api_key=AGENT_KEY) as client:
        with pytest.raises(sentinel_sdk.PermissionDenied):
            client.guard("ops-bot", "PAY_INVOICE", SMALL_INVOICE)
    operator = keyed_server.operator(OPERATOR_KEY)
    assert operator.list("ops-bot") == []


def test_an_agent_waits_for_the_operators_decision_on_its_own_intent(keyed_server):
    operator = keyed_server.operator(OPERATOR_KEY)
    pending = operator.next_pending("billing-bot")
    with Client(keyed_server.target, api_key=AGENT_KEY) as client, ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(
            client.guard, "billing-bot", "PAY_INVOICE", {"amount": 9000, "vendor": "Shady"}
        )
        operator.resolve(next(pending), approve=False, reason="vendor not on file")
        decision = waiting.result(timeout=30)
    assert decision.state == "DECLINED"
    assert decision.decided_by.approver == "alice"
