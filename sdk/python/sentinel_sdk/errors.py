"""Typed errors: every failure the SDK raises is a ``SentinelError``, never a raw grpc error."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Optional

import grpc

if TYPE_CHECKING:
    from .decision import Decision


class SentinelError(Exception):
    """Base of every error the SDK raises. ``code`` is the gRPC status name, if any."""

    code: Optional[str] = None

    def __init__(self, message: str, *, code: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class Unauthenticated(SentinelError):
    """No API key, or one the gateway does not know."""

    code = "UNAUTHENTICATED"


class PermissionDenied(SentinelError):
    """The key is valid but may not do this (e.g. an agent submitting as another agent)."""

    code = "PERMISSION_DENIED"


class InvalidArgument(SentinelError):
    """Bad input. ``field`` names the offending field (``agent_id``, ``payload.amount``...)."""

    code = "INVALID_ARGUMENT"

    def __init__(self, message: str, *, field: Optional[str] = None) -> None:
        super().__init__(message)
        self.field = field if field is not None else _field_of(message)


class NotFound(SentinelError):
    """Unknown intent, or one the caller may not see."""

    code = "NOT_FOUND"


class FailedPrecondition(SentinelError):
    """Idempotency key reused with another body, or the intent is already decided."""

    code = "FAILED_PRECONDITION"


class ResourceExhausted(SentinelError):
    """Rate limited or over a limit. ``retry_after`` (seconds) when the server gave a hint."""

    code = "RESOURCE_EXHAUSTED"

    def __init__(self, message: str, *, retry_after: Optional[float] = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Resumable(SentinelError):
    """An error after which the caller can resume: ``intent_id`` when the intent exists,
    else ``idempotency_key`` to submit again without creating a second intent."""

    def __init__(
        self,
        message: str,
        *,
        intent_id: Optional[str] = None,
        idempotency_key: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.intent_id = intent_id
        self.idempotency_key = idempotency_key


class Unavailable(_Resumable):
    """The gateway (or its store) could not be reached for longer than the retry window.

    Never an approval. ``intent_id`` is set when an intent was already submitted.
    """

    code = "UNAVAILABLE"


class Timeout(_Resumable):
    """The wait for a decision ran out. The intent stays pending under ``intent_id``."""

    code = "DEADLINE_EXCEEDED"


class NotApproved(SentinelError):
    """The intent was declined, expired or cancelled. ``decision`` says by whom and why."""

    def __init__(self, decision: "Decision") -> None:
        super().__init__(
            f"intent {decision.intent_id} was not approved: {decision.state}"
            + (f" ({decision.analysis})" if decision.analysis else "")
        )
        self.decision = decision


# The gateway's INVALID_ARGUMENT messages start with the field: "agent_id: is required",
# "payload.amount: number is not finite", "labels[env]: value is longer than 256 bytes".
_FIELD = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*(?:[.\[][^:\s]*)?):\s")


def _field_of(message: str) -> Optional[str]:
    m = _FIELD.match(message)
    return m.group(1) if m else None


def _retry_after(error: grpc.RpcError) -> Optional[float]:
    """Reads a retry hint from the trailers: ``retry-after`` (seconds) or
    ``grpc-retry-pushback-ms``."""
    trailers = _call_method(error, "trailing_metadata") or ()
    for key, value in trailers:
        try:
            if key == "retry-after":
                return max(0.0, float(value))
            if key == "grpc-retry-pushback-ms":
                return max(0.0, float(value) / 1000.0)
        except (TypeError, ValueError):
            continue
    return None


def _call_method(error: grpc.RpcError, name: str):  # type: ignore[no-untyped-def]
    method = getattr(error, name, None)
    return method() if callable(method) else None


_BY_CODE = {
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
}


def from_rpc_error(error: grpc.RpcError, *, intent_id: Optional[str] = None) -> SentinelError:
    """The one mapping from a grpc error to the SDK's types."""
    code = _call_method(error, "code")
    details = _call_method(error, "details") or str(error)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidArgument(details)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return ResourceExhausted(details, retry_after=_retry_after(error))
    if code == grpc.StatusCode.UNAVAILABLE:
        return Unavailable(details, intent_id=intent_id)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return Timeout(details, intent_id=intent_id)
    cls = _BY_CODE.get(code)
    if cls is not None:
        return cls(details)
    name = code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
    return SentinelError(f"{name}: {details}", code=name)
