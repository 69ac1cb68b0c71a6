"""The blocking client: ``guard`` submits an intent and follows it to its decision."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import time
from typing import Any, Callable, Mapping, Optional, TypeVar

import grpc

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
from ._guarded import wrap_async, wrap_sync
from ._proto.sentinel.v1 import sentinel_pb2 as pb
from .decision import Decision, decision_from_intent
from .errors import NotApproved, from_rpc_error

F = TypeVar("F", bound=Callable[..., Any])


class Client(_config.ClientBase):
    """A connection to a Sentinel gateway.

    ``target`` defaults to ``SENTINEL_ADDR`` (then ``127.0.0.1:50051``) and ``api_key`` to
    ``SENTINEL_API_KEY``; the key travels as ``authorization: Bearer <key>``. ``tls`` is
    ``True`` (system roots) or a ``TlsConfig``. ``timeout`` bounds each unary call
    (SubmitIntent runs policy and the scorer). ``retry_window`` is how long the gateway may
    stay unreachable in a row, while resubmitting or resubscribing, before ``Unavailable``.
    """

    def _open(self, settings: _config.Settings) -> Any:
        if settings.credentials is None:
            return grpc.insecure_channel(settings.target, options=settings.options)
        return grpc.secure_channel(
            settings.target, settings.credentials, options=settings.options
        )

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def guard(
        self,
        agent_id: str,
        action: str,
        payload: Optional[Mapping[str, Any]] = None,
        reasoning: str = "",
        idempotency_key: Optional[str] = None,
        labels: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
    ) -> Decision:
        """Submits the intent and returns its terminal decision.

        ``timeout`` (seconds, ``None``: until decided) ends the wait with ``Timeout``; the
        intent then stays pending. Without ``idempotency_key`` one is generated; it is reused
        for every resubmission, so a retry never creates a second intent."""
        key = idempotency_key or new_idempotency_key()
        request = submit_request(agent_id, action, payload, reasoning, key, labels)
        deadline = Deadline(timeout, self._retry_window)
        response = self._submit(request, deadline)
        if response.intent.state in TERMINAL:
            return decision_from_intent(response.intent, replayed=response.replayed)
        return self._wait(response.intent.intent_id, deadline, response.replayed)

    def require_approval(
        self,
        agent_id: str,
        action: str,
        payload: Optional[Mapping[str, Any]] = None,
        reasoning: str = "",
        idempotency_key: Optional[str] = None,
        labels: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
    ) -> Decision:
        """``guard``, raising ``NotApproved`` (with the decision) unless approved."""
        decision = self.guard(
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
        """Decorates a function so that it runs only once Sentinel approved the call; its
        arguments, by name, are the payload. An async function is guarded too: the blocking
        wait then runs in a worker thread (``asyncio.to_thread``)."""

        def approve(payload: Mapping[str, Any]) -> Decision:
            return self.require_approval(
                agent_id, action, payload, reasoning, None, labels, timeout
            )

        async def approve_async(payload: Mapping[str, Any]) -> Decision:
            return await asyncio.to_thread(approve, payload)

        def decorate(fn: F) -> F:
            if inspect.iscoroutinefunction(fn):
                return wrap_async(fn, approve_async)
            return wrap_sync(fn, approve)

        return decorate

    def get_decision(self, intent_id: str) -> Decision:
        """The intent's current state (``approved`` only once APPROVED)."""
        try:
            response = self.stub.GetIntent(
                pb.GetIntentRequest(intent_id=intent_id),
                timeout=self._timeout,
                metadata=self._metadata,
            )
        except grpc.RpcError as e:
            raise from_rpc_error(e, intent_id=intent_id) from None
        return decision_from_intent(response.intent)

    def cancel(self, intent_id: str, reason: str = "") -> Decision:
        """Withdraws a pending intent."""
        try:
            response = self.stub.CancelIntent(
                pb.CancelIntentRequest(intent_id=intent_id, reason=reason),
                timeout=self._timeout,
                metadata=self._metadata,
            )
        except grpc.RpcError as e:
            raise from_rpc_error(e, intent_id=intent_id) from None
        return decision_from_intent(response.intent)

    def _submit(
        self, request: pb.SubmitIntentRequest, deadline: Deadline
    ) -> pb.SubmitIntentResponse:
        backoff = Backoff()
        while True:
            try:
                response: pb.SubmitIntentResponse = self.stub.SubmitIntent(
                    request,
                    timeout=deadline.rpc_timeout(self._timeout),
                    metadata=self._metadata,
                )
                return response
            except grpc.RpcError as e:
                failure = submit_failure(e, deadline, request.idempotency_key)
                if failure is not None:
                    raise failure from None
            time.sleep(deadline.sleep_for(backoff.next_delay()))

    def _wait(self, intent_id: str, deadline: Deadline, replayed: bool) -> Decision:
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
                for event in call:
                    deadline.connected()
                    backoff.reset()
                    if event.terminal or event.intent.state in TERMINAL:
                        return self._terminal(event, replayed)
                # The stream ended without a terminal event (a replica shutting down).
            except grpc.RpcError as e:
                error = e
            failure = watch_failure(error, deadline, intent_id)
            if failure is not None:
                raise failure from None
            time.sleep(deadline.sleep_for(backoff.next_delay()))

    def _terminal(self, event: pb.DecisionEvent, replayed: bool) -> Decision:
        # Events leave the receipt out: an approval is read back with GetIntent.
        if event.HasField("intent") and event.intent.state in TERMINAL - {pb.INTENT_STATE_APPROVED}:
            return decision_from_intent(event.intent, replayed=replayed)
        decision = self.get_decision(event.intent_id)
        return dataclasses.replace(decision, replayed=replayed)

