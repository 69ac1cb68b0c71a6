"""What the sync and async clients share: payload checks, requests, retry rules, backoff."""

from __future__ import annotations

import inspect
import math
import random
import time
import uuid
from typing import Any, Callable, Dict, Mapping, Optional

import grpc
from google.protobuf import struct_pb2

from ._proto.sentinel.v1 import sentinel_pb2 as pb
from .errors import InvalidArgument, SentinelError, Timeout, Unavailable, from_rpc_error

TERMINAL = frozenset(
    {
        pb.INTENT_STATE_APPROVED,
        pb.INTENT_STATE_DECLINED,
        pb.INTENT_STATE_EXPIRED,
        pb.INTENT_STATE_CANCELLED,
    }
)

# A submit that failed with one of these may or may not have reached the store: it is sent
# again with the same idempotency key, which the gateway deduplicates.
SUBMIT_UNKNOWN_OUTCOME = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
)

# A watch that ended with one of these is resubscribed: the first event of a new watch is
# the intent's current state, so nothing is missed. RESOURCE_EXHAUSTED is a watcher that
# fell behind; INTERNAL/UNKNOWN/CANCELLED are what a connection reset looks like.
WATCH_RESUBSCRIBE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.CANCELLED,
    }
)


def new_idempotency_key() -> str:
    return f"sdk-{uuid.uuid4().hex}"


def check_json(value: Any, path: str) -> None:
    """Raises ``InvalidArgument`` naming the first value that is not plain JSON."""
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidArgument(f"{path}: number is not finite", field=path)
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidArgument(
                    f"{path}: keys must be strings, got {type(k).__name__}", field=path
                )
            check_json(v, f"{path}.{k}")
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_json(v, f"{path}[{i}]")
        return
    raise InvalidArgument(
        f"{path}: {type(value).__name__} is not JSON-serialisable "
        "(use dict, list, str, int, float, bool or None)",
        field=path,
    )


def to_struct(payload: Optional[Mapping[str, Any]]) -> Optional[struct_pb2.Struct]:
    if payload is None:
        return None
    if not isinstance(payload, Mapping):
        raise InvalidArgument(
            f"payload: expected a mapping, got {type(payload).__name__}", field="payload"
        )
    check_json(payload, "payload")
    s = struct_pb2.Struct()
    s.update(payload)
    return s


def submit_request(
    agent_id: str,
    action: str,
    payload: Optional[Mapping[str, Any]],
    reasoning: str,
    idempotency_key: str,
    labels: Optional[Mapping[str, str]],
) -> pb.SubmitIntentRequest:
    return pb.SubmitIntentRequest(
        agent_id=agent_id,
        action=action,
        payload=to_struct(payload),
        reasoning=reasoning,
        idempotency_key=idempotency_key,
        labels=dict(labels or {}),
    )


class Backoff:
    """Exponential backoff with full jitter, bounded by ``cap``; ``reset`` after progress."""

    def __init__(self, base: float = 0.05, cap: float = 2.0) -> None:
        self.base = base
        self.cap = cap
        self.attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * (2**self.attempt))
        self.attempt = min(self.attempt + 1, 30)
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0


class Deadline:
    """The caller's overall bound (``None``: none) and how long the gateway has been out of
    reach in a row (bounded by ``retry_window``)."""

    def __init__(self, timeout: Optional[float], retry_window: float) -> None:
        now = time.monotonic()
        self.at = None if timeout is None else now + timeout
        self.retry_window = retry_window
        self.outage_since: Optional[float] = None

    def remaining(self) -> Optional[float]:
        return None if self.at is None else self.at - time.monotonic()

    def expired(self) -> bool:
        r = self.remaining()
        return r is not None and r <= 0

    def rpc_timeout(self, default: Optional[float]) -> Optional[float]:
        r = self.remaining()
        if r is None:
            return default
        return max(0.001, r if default is None else min(r, default))

    def connected(self) -> None:
        self.outage_since = None

    def outage_too_long(self) -> bool:
        now = time.monotonic()
        if self.outage_since is None:
            self.outage_since = now
        return now - self.outage_since > self.retry_window

    def sleep_for(self, delay: float) -> float:
        r = self.remaining()
        return delay if r is None else max(0.0, min(delay, r))


def error_code(error: grpc.RpcError) -> Optional[grpc.StatusCode]:
    code = getattr(error, "code", None)
    return code() if callable(code) else None


class PayloadBinder:
    """Turns a call's arguments into a payload by parameter name (positional ones too),
    defaults applied. ``**kwargs`` are merged in; ``*args`` stays a list under its own name;
    a leading ``self``/``cls`` is left out. The signature is read once, at decoration."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.signature = inspect.signature(fn)
        params = list(self.signature.parameters.values())
        self.skip = params[0].name if params and params[0].name in ("self", "cls") else None

    def bind(self, args: Any, kwargs: Any) -> Dict[str, Any]:
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        payload: Dict[str, Any] = {}
        params = self.signature.parameters
        for name, value in bound.arguments.items():
            kind = params[name].kind
            if name == self.skip:
                continue
            if kind is inspect.Parameter.VAR_KEYWORD:
                payload.update(value)
            elif kind is inspect.Parameter.VAR_POSITIONAL:
                payload[name] = list(value)
            else:
                payload[name] = value
        check_json(payload, "payload")
        return payload


def waiting_timeout(intent_id: str) -> Timeout:
    return Timeout(
        f"no decision on intent {intent_id} in time; it stays pending", intent_id=intent_id
    )


def waiting_unreachable(intent_id: str) -> Unavailable:
    return Unavailable(
        f"gateway unreachable while waiting for intent {intent_id}; it stays pending",
        intent_id=intent_id,
    )


def submit_failure(
    error: grpc.RpcError, deadline: Deadline, key: str
) -> Optional[SentinelError]:
    """After a failed SubmitIntent: the error to raise, or ``None`` to resubmit (same key)."""
    if error_code(error) not in SUBMIT_UNKNOWN_OUTCOME:
        return from_rpc_error(error)
    if deadline.expired():
        return Timeout(
            f"no answer to SubmitIntent in time; retry with idempotency_key={key}",
            idempotency_key=key,
        )
    if deadline.outage_too_long():
        return Unavailable(
            f"gateway unreachable; retry with idempotency_key={key}", idempotency_key=key
        )
    return None


def watch_failure(
    error: Optional[grpc.RpcError], deadline: Deadline, intent_id: str
) -> Optional[SentinelError]:
    """After a watch ended without a terminal event (``error`` is ``None`` when the stream
    simply closed, e.g. a replica shutting down): the error to raise, or ``None`` to
    resubscribe."""
    if error is not None:
        code = error_code(error)
        if code == grpc.StatusCode.DEADLINE_EXCEEDED and deadline.expired():
            return waiting_timeout(intent_id)
        if code not in WATCH_RESUBSCRIBE and code != grpc.StatusCode.DEADLINE_EXCEEDED:
            return from_rpc_error(error, intent_id=intent_id)
    if deadline.outage_too_long():
        return waiting_unreachable(intent_id)
    return None
