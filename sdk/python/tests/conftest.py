"""Starts the real ``sentinel serve`` binary (memory and Redis) for the SDK's tests.

The binary is ``$SENTINEL_BIN`` or ``target/debug/sentinel`` (``cargo build`` first). Each
server binds port 0 and logs its addresses in JSON; the fixture reads them from that line.
A restarted server binds the same ports again."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, TypeVar

import grpc
import pytest

from sentinel_sdk._proto.sentinel.v1 import sentinel_pb2 as pb
from sentinel_sdk._proto.sentinel.v1 import sentinel_pb2_grpc as pb_grpc

REPO = Path(__file__).resolve().parents[3]
STARTUP_TIMEOUT = 20.0
T = TypeVar("T")


def binary() -> Path:
    path = Path(os.environ.get("SENTINEL_BIN", REPO / "target" / "debug" / "sentinel"))
    if not path.exists():
        pytest.fail(f"{path} not found: run `cargo build` first (or set SENTINEL_BIN)")
    return path


class LineReader:
    """Collects a process's output lines on a thread so a test can wait for one."""

    def __init__(self, stream) -> None:  # type: ignore[no-untyped-def]
        self.lines: "queue.Queue[Optional[str]]" = queue.Queue()
        self.seen: List[str] = []
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:  # type: ignore[no-untyped-def]
        for raw in iter(stream.readline, b""):
            self.lines.put(raw.decode("utf-8", "replace"))
        self.lines.put(None)

    def wait_for(self, match: Callable[[str], Optional[T]], timeout: float) -> T:
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError("no matching line; output so far:\n" + "".join(self.seen))
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError("process exited; output:\n" + "".join(self.seen))
            self.seen.append(line)
            found = match(line)
            if found is not None:
                return found


class Redis:
    def __init__(self) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        LineReader(self.proc.stdout).wait_for(
            lambda line: True if "Ready to accept connections" in line else None, STARTUP_TIMEOUT
        )

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


_PORT_LOW, _PORT_SPAN = 12_000, 20_000
_next_port = (os.getpid() * 7_919) % _PORT_SPAN


def free_port() -> int:
    """A loopback port below the kernel's ephemeral range (32768-60999), for the server to bind.

    A port the kernel picked (bind to 0) is in the ephemeral range, where another test's
    outgoing connection can take it before the server binds it; below that range only explicit
    binds compete. Ports are never handed out twice by one test process.
    """
    global _next_port
    for _ in range(_PORT_SPAN):
        port = _PORT_LOW + _next_port % _PORT_SPAN
        _next_port += 1
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port below the ephemeral range")


def _serving(line: str) -> Optional[Dict[str, str]]:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    fields = record.get("fields", {})
    if fields.get("message") == "sentinel is serving":
        return {"grpc": fields["grpc_addr"], "http": fields["http_addr"]}
    return None


class Server:
    """One ``sentinel serve`` process; ``restart`` keeps its ports."""

    def __init__(self, env: Dict[str, str]) -> None:
        self.env = env
        self.grpc_addr = "127.0.0.1:0"
        self.http_addr = "127.0.0.1:0"
        self.proc: Optional[subprocess.Popen] = None
        self.start()

    def start(self) -> None:
        env = dict(os.environ)
        for k in list(env):
            if k.startswith(("SENTINEL_", "GROQ_", "TELNYX_", "OTEL_")):
                del env[k]
        env.update(self.env)
        env.update(
            SENTINEL_GRPC_ADDR=self.grpc_addr,
            SENTINEL_HTTP_ADDR=self.http_addr,
            SENTINEL_LOG_FORMAT="json",
        )
        self.proc = subprocess.Popen(
            [str(binary()), "serve"], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        self.reader = LineReader(self.proc.stderr)
        addrs = self.reader.wait_for(_serving, STARTUP_TIMEOUT)
        self.grpc_addr, self.http_addr = addrs["grpc"], addrs["http"]

    def kill(self) -> None:
        """Ends the process at once, like a crashed replica (no graceful shutdown)."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    @property
    def target(self) -> str:
        return self.grpc_addr

    def operator(self, api_key: Optional[str] = None) -> "Operator":
        return Operator(self.grpc_addr, api_key)


class Operator:
    """The generated stub used directly, as an operator's console would."""

    def __init__(self, target: str, api_key: Optional[str]) -> None:
        self.channel = grpc.insecure_channel(target)
        self.stub = pb_grpc.SentinelStub(self.channel)
        self.metadata = (("authorization", f"Bearer {api_key}"),) if api_key else ()

    def resolve(self, intent_id: str, approve: bool, reason: str = "checked") -> pb.Intent:
        return self.stub.ResolveIntent(
            pb.ResolveIntentRequest(intent_id=intent_id, approve=approve, reason=reason),
            timeout=10, metadata=self.metadata,
        ).intent

    def get(self, intent_id: str) -> pb.Intent:
        return self.stub.GetIntent(
            pb.GetIntentRequest(intent_id=intent_id), timeout=10, metadata=self.metadata
        ).intent

    def list(self, agent_id: str) -> List[pb.Intent]:
        return list(
            self.stub.ListIntents(
                pb.ListIntentsRequest(agent_id=agent_id, page_size=500),
                timeout=10, metadata=self.metadata,
            ).intents
        )

    def next_pending(self, agent_id: str, timeout: float = 15.0) -> Iterator[str]:
        """Yields the id of each intent of ``agent_id`` that becomes PENDING_APPROVAL,
        from a WatchDecisions stream opened now (so open it before the submit)."""
        stream = self.stub.WatchDecisions(
            pb.WatchDecisionsRequest(
                agent_id=agent_id, states=[pb.INTENT_STATE_PENDING_APPROVAL]
            ),
            timeout=timeout, metadata=self.metadata,
        )
        # The server sends its headers once it has subscribed: from then on no transition
        # can be missed.
        stream.initial_metadata()
        return (e.intent_id for e in stream)

    def close(self) -> None:
        self.channel.close()


@pytest.fixture(scope="session")
def redis() -> Iterator[Redis]:
    r = Redis()
    yield r
    r.stop()


@pytest.fixture(scope="session")
def memory_server() -> Iterator[Server]:
    s = Server({})
    yield s
    s.stop()


@pytest.fixture(scope="session")
def redis_server(redis: Redis) -> Iterator[Server]:
    s = Server({"SENTINEL_REDIS_URL": redis.url})
    yield s
    s.stop()


@pytest.fixture(params=["memory", "redis"])
def server(request: pytest.FixtureRequest) -> Server:
    """The same test against the in-memory store and against Redis."""
    return request.getfixturevalue(f"{request.param}_server")


@pytest.fixture
def agent() -> str:
    """A fresh agent id per test, so tests sharing a server never see each other's intents."""
    return f"bot-{uuid.uuid4().hex[:12]}"
