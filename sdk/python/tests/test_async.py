"""AsyncClient: the same basics, awaited."""

from __future__ import annotations

import asyncio

import pytest

import sentinel_sdk
from sentinel_sdk import AsyncClient, NotApproved, current_decision
from sentinel_sdk._proto.sentinel.v1 import sentinel_pb2 as pb

SMALL_INVOICE = {"amount": 420, "vendor": "AWS"}


async def test_approved_declined_and_invalid(server, agent):
    async with AsyncClient(server.target) as client:
        approved = await client.guard(agent, "PAY_INVOICE", SMALL_INVOICE)
        assert approved.approved and approved.decided_by.kind == "POLICY"
        with pytest.raises(NotApproved) as raised:
            await client.require_approval(agent, "DROP_TABLE", {"table": "users"})
        assert raised.value.decision.state == "DECLINED"
        with pytest.raises(sentinel_sdk.InvalidArgument) as invalid:
            await client.guard(agent, "", SMALL_INVOICE)
        assert invalid.value.field == "action"


async def test_guard_returns_the_operators_decision(server, agent):
    operator = server.operator()
    pending = operator.next_pending(agent)
    async with AsyncClient(server.target) as client:
        waiting = asyncio.ensure_future(
            client.guard(agent, "DELETE_USER", {"user_id": "u-1"}, timeout=30)
        )
        intent_id = await asyncio.to_thread(next, pending)
        await asyncio.to_thread(operator.resolve, intent_id, True)
        decision = await asyncio.wait_for(waiting, 30)
    assert decision.approved and decision.intent_id == intent_id
    assert decision.decided_by.kind == "HUMAN"


async def test_timeout_leaves_the_intent_pending(server, agent):
    async with AsyncClient(server.target) as client:
        with pytest.raises(sentinel_sdk.Timeout) as raised:
            await client.guard(agent, "DELETE_USER", {"user_id": "u-2"}, timeout=0.5)
    state = server.operator().get(raised.value.intent_id).state
    assert state == pb.INTENT_STATE_PENDING_APPROVAL


async def test_decorator_runs_only_when_approved(memory_server, agent):
    ran = []
    async with AsyncClient(memory_server.target) as client:

        @client.guarded(action="PAY_INVOICE", agent_id=agent)
        async def pay(amount: int, vendor: str) -> str:
            decision = current_decision()
            assert decision is not None and decision.approved
            ran.append(decision.intent_id)
            return "paid"

        @client.guarded(action="DROP_TABLE", agent_id=agent)
        async def drop(table: str) -> None:
            ran.append("dropped")

        assert await pay(420, vendor="AWS") == "paid"
        with pytest.raises(NotApproved):
            await drop("users")
        with pytest.raises(TypeError):
            client.guarded(action="PAY_INVOICE", agent_id=agent)(lambda amount: None)
    assert len(ran) == 1 and ran[0] != "dropped"
