"""The asyncio client (grpc.aio): the same methods as ``Client``, awaited."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any, Callable, Mapping, Optional, TypeVar

import grpc
import grpc.aio

from . import _config
from ._core import (
    TERMINAL,
    Backoff,
    Deadline,
    new_idempotency_key,
    submit_failure,
    submit_request,
    waiting_timeout,
    watch_failure,
)
from ._guarded import wrap_async
from ._proto.sentinel.v1 import sentinel_pb2 as pb
from .decision import Decision, decision_from_intent
from .errors import NotApproved, from_rpc_error

F = TypeVar("F", bound=Callable[..., Any])


class AsyncClient(_config.ClientBase):
    """``Client`` for asyncio. Create it inside the event loop that uses it."""

    def _open(self, settings: _config.Settings) -> Any:
        if settings.credentials is None:
            return grpc.aio.insecure_channel(settings.target, options=settings.options)
        return grpc.aio.secure_channel(
            settings.target, settings.credentials, options=settings.options
        )

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def guard(
        self,
        agent_id: str,
        action: str,
        payload: Optional[Mapping[str, Any]] = None,
        reasoning: str = "",
        idempotency_key: Optional[str] = None,
        labels: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
    ) -> Decision:
        """See ``Client.guard``."""
        key = idempotency_key or new_idempotency_key()
        request = submit_request(agent_id, action, payload, reasoning, key, labels)
        deadline = Deadline(timeout, self._retry_window)
        response = await self._submit(request, deadline)
        if response.intent.state in TERMINAL:
            return decision_from_intent(response.intent, replayed=response.replayed)
        return await self._wait(response.intent.intent_id, deadline, response.replayed)

    async def require_approval(
        self,
        agent_id: str,
        action: str,
        payload: Optional[Mapping[str, Any]] = None,
        reasoning: str = "",
        idempotency_key: Optional[str] = None,
        labels: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
    ) -> Decision:
        """See ``Client.require_approval``."""
        decision = await self.guard(
            agent_id, action, payload, reasoning, idempotency_key, labels, timeout
        )
        if not decision.approved:
            raise NotApproved(decision)
        return decision

    def guarded(
        self,
        action: str,
        agent_id: str,
        *,
        reasoning: str = "",
        labels: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
    ) -> Callable[[F], F]:
        """Like ``Client.guarded``, for async functions only (a sync function would block
        the event loop while it waits: guard it with ``Client``)."""

        async def approve(payload: Mapping[str, Any]) -> Decision:
            return await self.require_approval(
                agent_id, action, payload, reasoning, None, labels, timeout
            )

        def decorate(fn: F) -> F:
            return wrap_async(fn, approve)

        return decorate

    async def get_decision(self, intent_id: str) -> Decision:
        """See ``Client.get_decision``."""
        try:
            response = await self.stub.GetIntent(
                pb.GetIntentRequest(intent_id=intent_id),
                timeout=self._timeout,
                metadata=self._metadata,
            )
        except grpc.RpcError as e:
            raise from_rpc_error(e, intent_id=intent_id) from None
        return decision_from_intent(response.intent)

    async def cancel(self, intent_id: str, reason: str = "") -> Decision:
        """See ``Client.cancel``."""
        try:
            response = await self.stub.CancelIntent(
                pb.CancelIntentRequest(intent_id=intent_id, reason=reason),
                timeout=self._timeout,
                metadata=self._metadata,
            )
        except grpc.RpcError as e:
            raise from_rpc_error(e, intent_id=intent_id) from None
        return decision_from_intent(response.intent)

    async def _submit(
        self, request: pb.SubmitIntentRequest, deadline: Deadline
    ) -> pb.SubmitIntentResponse:
        backoff = Backoff()
        while True:
            try:
                response: pb.SubmitIntentResponse = await self.stub.SubmitIntent(
                    request,
                    timeout=deadline.rpc_timeout(self._timeout),
                    metadata=self._metadata,
                )
                return response
            except grpc.RpcError as e:
                failure = submit_failure(e, deadline, request.idempotency_key)
                if failure is not None:
                    raise failure from None
            await asyncio.sleep(deadline.sleep_for(backoff.next_delay()))

    async def _wait(self, intent_id: str, deadline: Deadline, replayed: bool) -> Decision:
        backoff = Backoff()
        request = pb.WatchDecisionRequest(intent_id=intent_id)
        while True:
            if deadline.expired():
                raise waiting_timeout(intent_id)
            error: Optional[grpc.RpcError] = None
            try:
                call = self.stub.WatchDecision(
                    request, timeout=deadline.rpc_timeout(None), metadata=self._metadata
                )
                async for event in call:
                    deadline.connected()
                    backoff.reset()
                    if event.terminal or event.intent.state in TERMINAL:
                        return await self._terminal(event, replayed)
            except grpc.RpcError as e:
                error = e
            failure = watch_failure(error, deadline, intent_id)
            if failure is not None:
                raise failure from None
            await asyncio.sleep(deadline.sleep_for(backoff.next_delay()))

    async def _terminal(self, event: pb.DecisionEvent, replayed: bool) -> Decision:
        # Events leave the receipt out: an approval is read back with GetIntent.
        if event.HasField("intent") and event.intent.state in TERMINAL - {pb.INTENT_STATE_APPROVED}:
            return decision_from_intent(event.intent, replayed=replayed)
        decision = await self.get_decision(event.intent_id)
        return dataclasses.replace(decision, replayed=replayed)
