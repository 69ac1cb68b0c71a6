"""A replica that dies while ``guard`` waits: the SDK resubscribes (or resubmits with the
same idempotency key) and returns the decision, and exactly one intent exists."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import pytest

from sentinel_sdk import Client

from conftest import Redis, Server


@pytest.fixture
def replica(redis: Redis) -> Iterator[Server]:
    s = Server({"SENTINEL_REDIS_URL": redis.url})
    yield s
    s.stop()


def test_guard_survives_a_server_restart_while_waiting(replica, agent):
    key = f"restart-{uuid.uuid4().hex}"
    operator = replica.operator()
    pending = operator.next_pending(agent)
    with Client(replica.target) as client, ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(
            client.guard,
            agent,
            "DELETE_USER",
            {"user_id": "u-9"},
            idempotency_key=key,
            timeout=60,
        )
        intent_id = next(pending)
        operator.close()
        replica.kill()
        replica.start()  # same ports, same Redis
        replica.operator().resolve(intent_id, approve=True, reason="after restart")
        decision = waiting.result(timeout=60)
    assert decision.approved and decision.intent_id == intent_id
    intents = replica.operator().list(agent)
    assert [(i.intent_id, i.idempotency_key) for i in intents] == [(intent_id, key)]


def test_guard_resubmits_with_the_same_key_while_the_server_is_down(replica, agent):
    key = f"down-{uuid.uuid4().hex}"
    replica.kill()
    with Client(replica.target) as client, ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(
            client.guard,
            agent,
            "PAY_INVOICE",
            {"amount": 420, "vendor": "AWS"},
            idempotency_key=key,
            timeout=60,
        )
        replica.start()
        decision = waiting.result(timeout=60)
    assert decision.approved
    intents = replica.operator().list(agent)
    assert [(i.intent_id, i.idempotency_key) for i in intents] == [(decision.intent_id, key)]
