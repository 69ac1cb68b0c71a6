"""An OpenAI Agents SDK function tool guarded by Sentinel (async, with ``AsyncClient``).

    pip install ./sdk/python openai-agents
    SENTINEL_ADDR=127.0.0.1:50051 OPENAI_API_KEY=... python examples/openai_agents_tool.py

``AsyncClient`` belongs to the event loop it was created in, so the tool is built inside it.
"""

from __future__ import annotations

import asyncio

from agents import Agent, FunctionTool, Runner, function_tool

from sentinel_sdk import AsyncClient, NotApproved, current_decision


def make_restart_tool(client: AsyncClient, agent_id: str = "ops-bot") -> FunctionTool:
    @client.guarded(action="RESTART_SERVER", agent_id=agent_id, timeout=600)
    async def restart(server: str, environment: str) -> str:
        decision = current_decision()
        assert decision is not None  # set for every guarded call that runs
        # ... restart the server here ...
        return f"restarted {server} in {environment} (Sentinel intent {decision.intent_id})"

    @function_tool
    async def restart_server(server: str, environment: str) -> str:
        """Restart `server` in `environment` (dev, staging or production)."""
        try:
            return await restart(server=server, environment=environment)
        except NotApproved as e:
            return f"not restarted: Sentinel said {e.decision.state}. {e.decision.analysis}"

    return restart_server


async def main() -> None:
    async with AsyncClient() as sentinel:
        agent = Agent(
            name="ops",
            instructions="You operate servers. Use the tools; report what Sentinel decided.",
            tools=[make_restart_tool(sentinel)],
        )
        result = await Runner.run(agent, "Restart web-1 in staging.")
        print(result.final_output)


if __name__ == "__main__":
    asyncio.run(main())
