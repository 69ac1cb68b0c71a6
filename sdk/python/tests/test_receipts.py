"""verify_receipt and ReceiptCache, on receipts signed here with generated Ed25519 keys."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Dict, Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sentinel_sdk import (
    InvalidReceipt,
    ReceiptCache,
    fetch_jwks,
    payload_hash,
    verify_receipt,
)

NOW = 1_800_000_000
PAYLOAD = {"vendor": "AWS", "amount": 420, "lines": [{"sku": "ec2", "qty": 1.5}]}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwk(key: Ed25519PrivateKey, kid: str) -> Dict[str, str]:
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": b64(raw), "kid": kid}


def sign(
    key: Ed25519PrivateKey, claims: Dict[str, Any], kid: str = "k1", alg: str = "EdDSA"
) -> str:
    header = b64(json.dumps({"alg": alg, "kid": kid, "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    signature = key.sign(f"{header}.{body}".encode())
    return f"{header}.{body}.{b64(signature)}"


def claims(**over: Any) -> Dict[str, Any]:
    c: Dict[str, Any] = {
        "iss": "sentinel-eu-1",
        "sub": "billing-bot",
        "jti": "0190f5c2-7d1e-7000-8000-000000000001",
        "act": "PAY_INVOICE",
        "ph": payload_hash(PAYLOAD),
        "dby": {"kind": "HUMAN", "approver": "alice"},
        "iat": NOW - 10,
        "exp": NOW + 290,
    }
    c.update(over)
    return c


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def jwks(key: Ed25519PrivateKey) -> Dict[str, Any]:
    other = Ed25519PrivateKey.generate()
    return {"keys": [jwk(other, "k0"), jwk(key, "k1")]}


def verify(receipt: str, keys: Any, **over: Any):  # type: ignore[no-untyped-def]
    args: Dict[str, Any] = dict(
        action="PAY_INVOICE", payload=PAYLOAD, agent_id="billing-bot", now=NOW
    )
    args.update(over)
    return verify_receipt(receipt, keys, **args)


def reason_of(receipt: str, keys: Any, **over: Any) -> str:
    with pytest.raises(InvalidReceipt) as raised:
        verify(receipt, keys, **over)
    return raised.value.reason


def test_a_valid_receipt_gives_its_claims(key, jwks):
    parsed = verify(sign(key, claims()), jwks)
    assert (parsed.sub, parsed.act, parsed.kid) == ("billing-bot", "PAY_INVOICE", "k1")
    assert parsed.dby.kind == "HUMAN" and parsed.dby.approver == "alice"
    # Key order and number spelling do not change the canonical hash (RFC 8785).
    reordered = {"lines": [{"qty": 1.5, "sku": "ec2"}], "amount": 420.0, "vendor": "AWS"}
    assert verify(sign(key, claims()), jwks, payload=reordered).jti == parsed.jti
    # A single JWK or the bare public key work too.
    assert verify(sign(key, claims()), jwks["keys"][1]).jti == parsed.jti
    assert verify(sign(key, claims()), key.public_key()).jti == parsed.jti


def test_payload_hash_is_sha256_of_the_canonical_json():
    expected = hashlib.sha256(
        b'{"amount":420,"lines":[{"qty":1.5,"sku":"ec2"}],"vendor":"AWS"}'
    ).hexdigest()
    assert payload_hash(PAYLOAD) == expected


def test_bad_signature(key, jwks):
    receipt = sign(Ed25519PrivateKey.generate(), claims())
    assert reason_of(receipt, jwks) == "bad_signature"
    header, body, sig = sign(key, claims()).split(".")
    forged = b64(json.dumps(claims(act="DROP_TABLE")).encode())
    assert reason_of(f"{header}.{forged}.{sig}", jwks, action="DROP_TABLE") == "bad_signature"


def test_expired(key, jwks):
    receipt = sign(key, claims(exp=NOW - 31))
    assert reason_of(receipt, jwks) == "expired"
    # Within the leeway it still counts.
    assert verify(sign(key, claims(exp=NOW - 5)), jwks).exp == NOW - 5


@pytest.mark.parametrize(
    "over, reason",
    [
        ({"payload": {**PAYLOAD, "amount": 421}}, "payload_mismatch"),
        ({"action": "EXPORT_CSV"}, "action_mismatch"),
        ({"agent_id": "ops-bot"}, "agent_mismatch"),
    ],
)
def test_mismatches(key, jwks, over, reason):
    assert reason_of(sign(key, claims()), jwks, **over) == reason


def test_unknown_kid(key, jwks):
    assert reason_of(sign(key, claims(), kid="k9"), jwks) == "unknown_kid"


def test_replayed_and_cache_bounds(key, jwks):
    cache = ReceiptCache(max_entries=2)
    receipt = sign(key, claims())
    verify(receipt, jwks, cache=cache)
    assert reason_of(receipt, jwks, cache=cache) == "replayed"
    verify(sign(key, claims(jti="second")), jwks, cache=cache)
    # Full of live receipts: a new one is refused rather than forgetting a live one.
    assert reason_of(sign(key, claims(jti="third")), jwks, cache=cache) == "cache_full"
    # Once the first two have expired they are forgotten and the slot is free.
    later = NOW + 290 + 31
    fresh = sign(key, claims(jti="third", iat=later, exp=later + 300))
    verify(fresh, jwks, cache=cache, now=later + 1)
    assert len(cache) == 1


@pytest.mark.parametrize(
    "receipt",
    [
        "not-a-jws",
        "a.b",
        "e30.e30.@@@",
        b64(b"[1]") + "." + b64(b"{}") + "." + b64(b"sig"),
    ],
)
def test_malformed(receipt, jwks):
    assert reason_of(receipt, jwks) == "malformed"


def test_malformed_claims_and_algorithms(key, jwks):
    assert reason_of(sign(key, claims(), alg="HS256"), jwks) == "malformed"
    no_exp = claims()
    del no_exp["exp"]
    assert reason_of(sign(key, no_exp), jwks) == "malformed"
    assert reason_of(sign(key, claims(dby="alice")), jwks) == "malformed"


@pytest.fixture
def jwks_url(jwks) -> Iterator[str]:
    body = json.dumps(jwks).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200 if self.path == "/.well-known/jwks.json" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/.well-known/jwks.json"
    server.shutdown()
    thread.join(timeout=5)


def test_fetch_jwks_then_verify(key, jwks_url):
    fetched = fetch_jwks(jwks_url)
    assert verify(sign(key, claims()), fetched).sub == "billing-bot"
