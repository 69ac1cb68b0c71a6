"""Sentinel's Python SDK: ask the gateway before acting, wait for the decision, prove it.

    from sentinel_sdk import Client

    client = Client()  # SENTINEL_ADDR / SENTINEL_API_KEY, or Client("host:50051", api_key=...)
    decision = client.require_approval(
        "billing-bot", "PAY_INVOICE", {"amount": 420, "vendor": "AWS"}
    )
"""

from ._config import TlsConfig
from ._guarded import current_decision
from .aio import AsyncClient
from .client import Client
from .decision import DecidedBy, Decision, Reason
from .errors import (
    FailedPrecondition,
    InvalidArgument,
    NotApproved,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    SentinelError,
    Timeout,
    Unauthenticated,
    Unavailable,
)
from .receipts import (
    InvalidReceipt,
    ReceiptCache,
    ReceiptClaims,
    ReceiptDecider,
    fetch_jwks,
    payload_hash,
    verify_receipt,
)

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "Client",
    "DecidedBy",
    "Decision",
    "FailedPrecondition",
    "InvalidArgument",
    "InvalidReceipt",
    "NotApproved",
    "NotFound",
    "PermissionDenied",
    "Reason",
    "ReceiptCache",
    "ReceiptClaims",
    "ReceiptDecider",
    "ResourceExhausted",
    "SentinelError",
    "Timeout",
    "TlsConfig",
    "Unauthenticated",
    "Unavailable",
    "current_decision",
    "fetch_jwks",
    "payload_hash",
    "verify_receipt",
]
