"""Approval receipts: verify that Sentinel approved exactly this action, payload and agent.

The gateway signs every APPROVED intent with a compact JWS (``alg: EdDSA``, Ed25519, header
``kid``) over the claims ``iss sub jti act ph dby iat exp``; ``ph`` is the lowercase hex
SHA-256 of the payload in RFC 8785 (JCS) canonical form. Public keys are served as a JWKS
(RFC 8037 OKP keys) at ``GET /.well-known/jwks.json`` on the gateway's HTTP listener.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import json
import threading
import time
import urllib.request
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .errors import SentinelError

REASONS = (
    "bad_signature",
    "expired",
    "payload_mismatch",
    "action_mismatch",
    "agent_mismatch",
    "unknown_kid",
    "replayed",
    "malformed",
    "cache_full",
)

KeySource = Union[Mapping[str, Any], Ed25519PublicKey, bytes]


class InvalidReceipt(SentinelError):
    """The receipt does not prove this approval. ``reason`` is one of ``REASONS``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


@dataclass(frozen=True)
class ReceiptDecider:
    kind: str  # "HUMAN", "POLICY" or "SCORER"
    approver: str


@dataclass(frozen=True)
class ReceiptClaims:
    iss: str
    sub: str
    jti: str
    act: str
    ph: str
    dby: ReceiptDecider
    iat: int
    exp: int
    kid: str


def payload_hash(payload: Any) -> str:
    """Lowercase hex SHA-256 of the payload's RFC 8785 canonical JSON (UTF-8)."""
    try:
        canonical = rfc8785.dumps(payload)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as e:
        raise InvalidReceipt("payload_mismatch", f"payload cannot be canonicalised: {e}") from e
    return hashlib.sha256(canonical).hexdigest()


def _b64url_decode(part: str, what: str) -> bytes:
    if not isinstance(part, str) or any(c in part for c in "=+/ \n"):
        raise InvalidReceipt("malformed", f"{what} is not unpadded base64url")
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError) as e:
        raise InvalidReceipt("malformed", f"{what} is not base64url") from e


def _json_object(raw: bytes, what: str) -> Dict[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise InvalidReceipt("malformed", f"{what} is not JSON") from e
    if not isinstance(value, dict):
        raise InvalidReceipt("malformed", f"{what} is not a JSON object")
    return value


def _okp_key(jwk: Mapping[str, Any]) -> Ed25519PublicKey:
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        raise InvalidReceipt("unknown_kid", f"key {jwk.get('kid')!r} is not an Ed25519 OKP key")
    raw = _b64url_decode(jwk.get("x", ""), "jwk x")
    if len(raw) != 32:
        raise InvalidReceipt("unknown_kid", f"key {jwk.get('kid')!r} is not 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def _find_key(source: KeySource, kid: str) -> Ed25519PublicKey:
    """A JWKS (``{"keys": [...]}``) or one JWK is searched by ``kid``; a bare key (object
    or 32 raw bytes) is used whatever the ``kid``."""
    if isinstance(source, Ed25519PublicKey):
        return source
    if isinstance(source, bytes):
        return Ed25519PublicKey.from_public_bytes(source)
    keys = source.get("keys") if "keys" in source else [source]
    if not isinstance(keys, list):
        raise InvalidReceipt("unknown_kid", "the JWKS has no key list")
    for jwk in keys:
        if isinstance(jwk, Mapping) and jwk.get("kid") == kid:
            return _okp_key(jwk)
    raise InvalidReceipt("unknown_kid", f"no key with kid {kid!r}")


def _claim(claims: Mapping[str, Any], name: str, kind: type) -> Any:
    value = claims.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InvalidReceipt("malformed", f"claim {name} is missing or not a {kind.__name__}")
    return value


def decode_unverified(receipt: str) -> Tuple[Dict[str, Any], Dict[str, Any], bytes, bytes]:
    """Header, claims, signing input and signature, without checking anything else."""
    if not isinstance(receipt, str):
        raise InvalidReceipt("malformed", "a receipt is a string")
    parts = receipt.split(".")
    if len(parts) != 3:
        raise InvalidReceipt("malformed", "a compact JWS has three parts")
    header = _json_object(_b64url_decode(parts[0], "header"), "header")
    claims = _json_object(_b64url_decode(parts[1], "claims"), "claims")
    signature = _b64url_decode(parts[2], "signature")
    return header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), signature


def verify_receipt(
    receipt: str,
    jwks_or_key: KeySource,
    *,
    action: str,
    payload: Any,
    agent_id: str,
    now: Optional[float] = None,
    leeway: float = 30.0,
    cache: Optional["ReceiptCache"] = None,
) -> ReceiptClaims:
    """Checks the signature, ``exp`` (with ``leeway`` seconds), and that the receipt names
    this ``agent_id``, ``action`` and ``payload``; with a ``cache``, also that its ``jti``
    was not used before. Raises ``InvalidReceipt`` with a specific ``reason``."""
    header, claims, signing_input, signature = decode_unverified(receipt)
    if header.get("alg") != "EdDSA":
        raise InvalidReceipt("malformed", f"alg {header.get('alg')!r} is not EdDSA")
    if "crit" in header:
        raise InvalidReceipt("malformed", "critical header extensions are not supported")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise InvalidReceipt("malformed", "header kid is missing")
    key = _find_key(jwks_or_key, kid)
    try:
        key.verify(signature, signing_input)
    except InvalidSignature:
        raise InvalidReceipt("bad_signature", "the signature does not verify") from None

    dby = claims.get("dby")
    if not isinstance(dby, dict) or not isinstance(dby.get("kind"), str):
        raise InvalidReceipt("malformed", "claim dby is missing or has no kind")
    parsed = ReceiptClaims(
        iss=_claim(claims, "iss", str),
        sub=_claim(claims, "sub", str),
        jti=_claim(claims, "jti", str),
        act=_claim(claims, "act", str),
        ph=_claim(claims, "ph", str),
        dby=ReceiptDecider(kind=dby["kind"], approver=str(dby.get("approver", ""))),
        iat=_claim(claims, "iat", int),
        exp=_claim(claims, "exp", int),
        kid=kid,
    )
    t = time.time() if now is None else now
    if t > parsed.exp + leeway:
        raise InvalidReceipt("expired", f"expired at {parsed.exp}")
    if parsed.iat > t + leeway:
        raise InvalidReceipt("malformed", f"issued in the future ({parsed.iat})")
    if parsed.sub != agent_id:
        raise InvalidReceipt("agent_mismatch", f"issued to {parsed.sub!r}, not {agent_id!r}")
    if parsed.act != action:
        raise InvalidReceipt("action_mismatch", f"approves {parsed.act!r}, not {action!r}")
    if parsed.ph != payload_hash(payload):
        raise InvalidReceipt("payload_mismatch", "approves another payload")
    if cache is not None:
        cache.claim(parsed, now=t)
    return parsed


class ReceiptCache:
    """Single use: remembers each accepted ``jti`` until its ``exp`` (plus ``leeway``).

    Memory is bounded by ``max_entries``: expired entries are dropped first; when every slot
    holds a live receipt the new one is refused (``cache_full``) rather than forgetting a
    live one, which would let it be replayed."""

    def __init__(self, max_entries: int = 100_000, leeway: float = 30.0) -> None:
        self.max_entries = max_entries
        self.leeway = leeway
        self._seen: Dict[str, float] = {}
        self._by_expiry: List[Tuple[float, str]] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._seen)

    def claim(self, claims: ReceiptClaims, now: Optional[float] = None) -> None:
        t = time.time() if now is None else now
        forget_at = claims.exp + self.leeway
        with self._lock:
            self._prune(t)
            if claims.jti in self._seen:
                raise InvalidReceipt("replayed", f"receipt {claims.jti} was already used")
            if len(self._seen) >= self.max_entries:
                raise InvalidReceipt("cache_full", "too many live receipts to remember")
            self._seen[claims.jti] = forget_at
            heapq.heappush(self._by_expiry, (forget_at, claims.jti))

    def _prune(self, now: float) -> None:
        while self._by_expiry and self._by_expiry[0][0] < now:
            _, jti = heapq.heappop(self._by_expiry)
            self._seen.pop(jti, None)


def fetch_jwks(url: str, timeout: float = 5.0) -> Dict[str, Any]:
    """Downloads a JWKS (e.g. ``http://gateway:8080/.well-known/jwks.json``)."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"fetch_jwks: {url!r} is not an http(s) URL")
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        body = response.read(1 << 20)
    jwks = json.loads(body.decode("utf-8"))
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise ValueError(f"fetch_jwks: {url} did not return a JWKS (no keys list)")
    return jwks
