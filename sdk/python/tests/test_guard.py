"""guard / require_approval / guarded against the real server, in memory and on Redis."""

from __future__ import annotations

import asyncio
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List

import pytest

import sentinel_sdk
from sentinel_sdk import Client, NotApproved, current_decision
from sentinel_sdk._proto.sentinel.v1 import sentinel_pb2 as pb

SMALL_INVOICE = {"amount": 420, "vendor": "AWS"}


def test_policy_approved_guard_returns_at_once(server, agent):
    with Client(server.target) as client:
        decision = client.guard(agent, "PAY_INVOICE", SMALL_INVOICE, reasoning="hosting bill")
    assert decision.approved
    assert decision.state == "APPROVED"
    assert decision.risk_score == 10
    assert decision.decided_by is not None and decision.decided_by.kind == "POLICY"
    assert decision.reasons and decision.reasons[0].source == "POLICY"
    # An approval carries its receipt (tests/test_receipts_server.py verifies it).
    assert decision.receipt is not None and decision.receipt.count(".") == 2
    assert server.operator().get(decision.intent_id).state == pb.INTENT_STATE_APPROVED


def test_declined_intent_raises_not_approved(server, agent):
    with Client(server.target) as client:
        with pytest.raises(NotApproved) as raised:
            client.require_approval(agent, "DROP_TABLE", {"table": "users"})
    decision = raised.value.decision
    assert not decision.approved
    assert decision.state == "DECLINED"
    assert decision.risk_score == 100


@pytest.mark.parametrize("approve", [True, False])
def test_guard_returns_the_operators_decision(server, agent, approve):
    operator = server.operator()
    pending = operator.next_pending(agent)
    with Client(server.target) as client, ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(
            client.guard, agent, "DELETE_USER", {"user_id": "u-7"}, timeout=30
        )
        intent_id = next(pending)
        operator.resolve(intent_id, approve=approve, reason="ticket OPS-12")
        decision = waiting.result(timeout=30)
    assert decision.intent_id == intent_id
    assert decision.approved is approve
    assert decision.state == ("APPROVED" if approve else "DECLINED")
    assert decision.decided_by is not None and decision.decided_by.kind == "HUMAN"
    assert decision.decision_reason == "ticket OPS-12"


def test_timeout_carries_the_intent_id_and_the_intent_stays_pending(server, agent):
    with Client(server.target) as client:
        with pytest.raises(sentinel_sdk.Timeout) as raised:
            client.guard(agent, "DELETE_USER", {"user_id": "u-8"}, timeout=0.5)
    intent_id = raised.value.intent_id
    assert intent_id
    assert server.operator().get(intent_id).state == pb.INTENT_STATE_PENDING_APPROVAL


def test_same_idempotency_key_is_the_same_intent(server, agent):
    with Client(server.target) as client:
        first = client.guard(agent, "PAY_INVOICE", SMALL_INVOICE, idempotency_key="inv-1")
        again = client.guard(agent, "PAY_INVOICE", SMALL_INVOICE, idempotency_key="inv-1")
    assert again.intent_id == first.intent_id
    assert again.replayed and not first.replayed


def test_decorator_runs_only_when_approved(server, agent):
    calls: List[Dict[str, Any]] = []
    with Client(server.target) as client:

        @client.guarded(action="PAY_INVOICE", agent_id=agent)
        def pay(amount: int, vendor: str, memo: str = "") -> str:
            decision = current_decision()
            assert decision is not None and decision.approved
            calls.append({"amount": amount, "vendor": vendor, "id": decision.intent_id})
            return "paid"

        @client.guarded(action="DROP_TABLE", agent_id=agent)
        def drop(table: str) -> None:
            calls.append({"dropped": table})

        # Positional arguments are bound to their names for the payload.
        assert pay(420, "AWS") == "paid"
        with pytest.raises(NotApproved):
            drop(table="users")

    assert len(calls) == 1 and calls[0]["amount"] == 420
    intent = server.operator().get(calls[0]["id"])
    assert dict(intent.payload) == {"amount": 420, "vendor": "AWS", "memo": ""}
    assert current_decision() is None


def test_decorator_guards_async_functions_with_the_sync_client(server, agent):
    ran = threading.Event()
    with Client(server.target) as client:

        @client.guarded(action="RESTART_SERVER", agent_id=agent)
        async def restart(environment: str) -> str:
            decision = current_decision()
            assert decision is not None and decision.approved
            ran.set()
            return environment

        @client.guarded(action="DROP_TABLE", agent_id=agent)
        async def drop(table: str) -> None:
            raise AssertionError("must not run")

        assert asyncio.run(restart("staging")) == "staging"
        with pytest.raises(NotApproved):
            asyncio.run(drop("users"))
    assert ran.is_set()


def test_decorator_rejects_payloads_that_are_not_json(memory_server, agent):
    with Client(memory_server.target) as client:

        @client.guarded(action="PAY_INVOICE", agent_id=agent)
        def pay(amount: int, vendor: object) -> None:
            raise AssertionError("must not run")

        with pytest.raises(sentinel_sdk.InvalidArgument) as raised:
            pay(10, object())
    assert raised.value.field == "payload.vendor"
    assert memory_server.operator().list(agent) == []


def test_invalid_argument_names_the_field(server, agent):
    with Client(server.target) as client:
        with pytest.raises(sentinel_sdk.InvalidArgument) as raised:
            client.guard("", "PAY_INVOICE", SMALL_INVOICE)
        assert raised.value.field == "agent_id"
        with pytest.raises(sentinel_sdk.InvalidArgument) as raised:
            client.guard(agent, "PAY_INVOICE", SMALL_INVOICE, labels={"env": "x" * 300})
        assert raised.value.field == "labels[env]"


def test_unknown_intent_is_not_found(memory_server):
    with Client(memory_server.target) as client:
        with pytest.raises(sentinel_sdk.NotFound):
            client.get_decision(str(uuid.uuid4()))
        with pytest.raises(sentinel_sdk.InvalidArgument) as raised:
            client.get_decision("no-such-intent")
    assert raised.value.field == "intent_id"


def test_unreachable_gateway_is_unavailable_never_an_approval(agent):
    from conftest import free_port

    with Client(f"127.0.0.1:{free_port()}", retry_window=0.3) as client:
        with pytest.raises(sentinel_sdk.Unavailable) as raised:
            client.guard(agent, "PAY_INVOICE", SMALL_INVOICE, idempotency_key="k-1")
    assert raised.value.idempotency_key == "k-1"


def test_address_and_key_come_from_the_environment(memory_server, agent, monkeypatch):
    monkeypatch.setenv("SENTINEL_ADDR", f"http://{memory_server.target}")
    with Client() as client:
        assert client.guard(agent, "PAY_INVOICE", SMALL_INVOICE).approved
