"""The ``guarded`` decorator's plumbing and ``current_decision()``.

A guarded function reads the approval it runs under with ``current_decision()``: a context
variable, so it works the same in threads, sync and async code, and needs no extra
parameter in the function's signature."""

from __future__ import annotations

import contextvars
import functools
import inspect
from typing import Any, Awaitable, Callable, Dict, Optional, TypeVar

from ._core import PayloadBinder
from .decision import Decision

F = TypeVar("F", bound=Callable[..., Any])

_CURRENT: contextvars.ContextVar[Optional[Decision]] = contextvars.ContextVar(
    "sentinel_current_decision", default=None
)


def current_decision() -> Optional[Decision]:
    """The approved decision of the guarded call running now (its ``receipt`` included);
    ``None`` outside a guarded call."""
    return _CURRENT.get()


def wrap_sync(fn: F, approve: Callable[[Dict[str, Any]], Decision]) -> F:
    """``fn`` runs only after ``approve(payload)`` returned (it raises unless approved)."""
    binder = PayloadBinder(fn)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        decision = approve(binder.bind(args, kwargs))
        token = _CURRENT.set(decision)
        try:
            return fn(*args, **kwargs)
        finally:
            _CURRENT.reset(token)

    return wrapper  # type: ignore[return-value]


def wrap_async(fn: F, approve: Callable[[Dict[str, Any]], Awaitable[Decision]]) -> F:
    """The coroutine ``fn`` is awaited only after ``await approve(payload)`` returned."""
    if not inspect.iscoroutinefunction(fn):
        raise TypeError(f"{getattr(fn, '__qualname__', fn)!r} is not an async function")
    binder = PayloadBinder(fn)

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        decision = await approve(binder.bind(args, kwargs))
        token = _CURRENT.set(decision)
        try:
            return await fn(*args, **kwargs)
        finally:
            _CURRENT.reset(token)

    return wrapper  # type: ignore[return-value]
