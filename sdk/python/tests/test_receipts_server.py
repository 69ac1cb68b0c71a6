"""Receipts issued by the real gateway, verified with its own ``/.well-known/jwks.json``."""

from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List

import pytest

from sentinel_sdk import (
    Client,
    InvalidReceipt,
    ReceiptCache,
    current_decision,
    fetch_jwks,
    verify_receipt,
)

INVOICE = {"amount": 420, "vendor": "AWS", "lines": [{"sku": "ec2", "qty": 1.5}]}


def jwks_url(server) -> str:  # type: ignore[no-untyped-def]
    return f"http://{server.http_addr}/.well-known/jwks.json"


def reason_of(receipt: str, jwks: Dict[str, Any], **expected: Any) -> str:
    with pytest.raises(InvalidReceipt) as raised:
        verify_receipt(receipt, jwks, **expected)
    return raised.value.reason


def test_a_policy_approval_verifies_once_and_only_for_its_payload(server, agent):
    with Client(server.target) as client:
        decision = client.guard(agent, "PAY_INVOICE", INVOICE)
    assert decision.approved and decision.receipt
    jwks = fetch_jwks(jwks_url(server))
    assert all(k["kty"] == "OKP" and k["crv"] == "Ed25519" and k["kid"] for k in jwks["keys"])

    expected = dict(action="PAY_INVOICE", payload=INVOICE, agent_id=agent)
    cache = ReceiptCache()
    claims = verify_receipt(decision.receipt, jwks, cache=cache, **expected)
    assert (claims.jti, claims.sub, claims.act) == (decision.intent_id, agent, "PAY_INVOICE")
    assert claims.iss == "sentinel" and claims.dby.kind == "POLICY"
    assert claims.exp - claims.iat == 300
    # The same receipt is what GetIntent returns.
    assert server.operator().get(decision.intent_id).receipt == decision.receipt

    # Single use: the executor's cache refuses it the second time.
    assert reason_of(decision.receipt, jwks, cache=cache, **expected) == "replayed"
    # Key order and number spelling do not matter; the values do.
    reordered = {"vendor": "AWS", "lines": [{"qty": 1.5, "sku": "ec2"}], "amount": 420.0}
    verify_receipt(decision.receipt, jwks, action="PAY_INVOICE", payload=reordered, agent_id=agent)
    other = {**INVOICE, "amount": 4200}
    assert reason_of(decision.receipt, jwks, **{**expected, "payload": other}) == "payload_mismatch"
    assert reason_of(decision.receipt, jwks, **{**expected, "action": "EXPORT_CSV"}) == "action_mismatch"

    # A tampered body (a longer expiry) no longer matches the signature.
    header, body, signature = decision.receipt.split(".")
    raw = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    raw["exp"] += 86_400
    forged = base64.urlsafe_b64encode(json.dumps(raw).encode()).rstrip(b"=").decode()
    assert reason_of(f"{header}.{forged}.{signature}", jwks, **expected) == "bad_signature"


def test_a_human_approval_names_the_approver(server, agent):
    operator = server.operator()
    pending = operator.next_pending(agent)
    payload = {"user_id": "u-9"}
    with Client(server.target) as client, ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(client.guard, agent, "DELETE_USER", payload, timeout=30)
        operator.resolve(next(pending), approve=True, reason="ticket OPS-13")
        decision = waiting.result(timeout=30)
    assert decision.approved and decision.receipt
    claims = verify_receipt(
        decision.receipt, fetch_jwks(jwks_url(server)),
        action="DELETE_USER", payload=payload, agent_id=agent,
    )
    assert claims.dby.kind == "HUMAN" and claims.dby.approver


def test_a_guarded_function_hands_its_receipt_to_the_executor(server, agent):
    jwks = fetch_jwks(jwks_url(server))
    cache = ReceiptCache()
    executed: List[str] = []

    def executor(receipt: str, payload: Dict[str, Any]) -> None:
        verify_receipt(receipt, jwks, action="PAY_INVOICE", payload=payload, agent_id=agent,
                       cache=cache)
        executed.append(receipt)

    with Client(server.target) as client:

        @client.guarded(action="PAY_INVOICE", agent_id=agent)
        def pay(amount: int, vendor: str) -> None:
            decision = current_decision()
            assert decision is not None and decision.receipt
            executor(decision.receipt, {"amount": amount, "vendor": vendor})

        pay(amount=99, vendor="Stripe")
    assert len(executed) == 1
    # The approval cannot be spent twice, nor on another payment.
    with pytest.raises(InvalidReceipt) as raised:
        executor(executed[0], {"amount": 99, "vendor": "Stripe"})
    assert raised.value.reason == "replayed"
    with pytest.raises(InvalidReceipt) as raised:
        executor(executed[0], {"amount": 9900, "vendor": "Stripe"})
    assert raised.value.reason == "payload_mismatch"
