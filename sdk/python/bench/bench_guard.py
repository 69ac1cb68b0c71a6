"""The SDK's own latency: ``Client.guard`` against a bare ``SubmitIntent`` on the stub.

Both send the same policy-approved intent (PAY_INVOICE 420 to AWS) to a real gateway, one
call at a time, interleaved so that both see the same machine. The difference of the
percentiles is what the SDK adds (building the request, the idempotency key, the Decision).

    python bench/bench_guard.py                    # starts target/release/sentinel (or debug)
    python bench/bench_guard.py --target host:port # an already running gateway
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import List, Optional

import grpc
from google.protobuf import struct_pb2

from sentinel_sdk import Client
from sentinel_sdk._proto.sentinel.v1 import sentinel_pb2 as pb
from sentinel_sdk._proto.sentinel.v1 import sentinel_pb2_grpc as pb_grpc

REPO = Path(__file__).resolve().parents[3]
PAYLOAD = {"amount": 420, "vendor": "AWS"}


def start_gateway(binary: Path) -> "tuple[subprocess.Popen[bytes], str]":
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL_")}
    env.update(
        SENTINEL_GRPC_ADDR="127.0.0.1:0",
        SENTINEL_HTTP_ADDR="127.0.0.1:0",
        SENTINEL_LOG_FORMAT="json",
        SENTINEL_LOG="warn,sentinel::app=info",
    )
    proc = subprocess.Popen([str(binary), "serve"], env=env, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    for raw in iter(proc.stderr.readline, b""):
        try:
            fields = json.loads(raw).get("fields", {})
        except ValueError:
            continue
        if fields.get("message") == "sentinel is serving":
            return proc, fields["grpc_addr"]
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise SystemExit(f"{binary} did not start")


def pct(samples: List[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target")
    parser.add_argument("--bin", type=Path)
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    args = parser.parse_args()

    proc: Optional[subprocess.Popen[bytes]] = None
    target = args.target
    if target is None:
        builds = (REPO / "target/release/sentinel", REPO / "target/debug/sentinel")
        binary = args.bin or next((p for p in builds if p.exists()), None)
        if binary is None:
            raise SystemExit("no sentinel binary: run `cargo build --release` or pass --target")
        proc, target = start_gateway(binary)
        print(f"gateway: {binary} on {target}")

    channel = grpc.insecure_channel(target)
    stub = pb_grpc.SentinelStub(channel)
    client = Client(target)
    payload = struct_pb2.Struct()
    payload.update(PAYLOAD)

    def bare() -> float:
        t = time.perf_counter()
        r = stub.SubmitIntent(
            pb.SubmitIntentRequest(
                agent_id="bench-bare",
                action="PAY_INVOICE",
                payload=payload,
                idempotency_key=uuid.uuid4().hex,
            ),
            timeout=10,
        )
        elapsed = time.perf_counter() - t
        assert r.intent.state == pb.INTENT_STATE_APPROVED
        return elapsed

    def sdk() -> float:
        t = time.perf_counter()
        d = client.guard("bench-sdk", "PAY_INVOICE", PAYLOAD)
        elapsed = time.perf_counter() - t
        assert d.approved
        return elapsed

    try:
        for _ in range(args.warmup):
            bare()
            sdk()
        bare_s: List[float] = []
        sdk_s: List[float] = []
        for _ in range(args.n):
            bare_s.append(bare())
            sdk_s.append(sdk())
    finally:
        client.close()
        channel.close()
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)

    ms = 1000.0
    print(f"calls: {args.n} each (after {args.warmup} warm-up), python {sys.version.split()[0]}")
    print(f"{'':10} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for name, s in (("bare", bare_s), ("guard", sdk_s)):
        print(f"{name:10} {pct(s, .5)*ms:8.3f} {pct(s, .99)*ms:8.3f} {statistics.mean(s)*ms:8.3f}")
    print(
        f"{'added':10} {(pct(sdk_s, .5)-pct(bare_s, .5))*ms:8.3f} "
        f"{(pct(sdk_s, .99)-pct(bare_s, .99))*ms:8.3f} "
        f"{(statistics.mean(sdk_s)-statistics.mean(bare_s))*ms:8.3f}"
    )


if __name__ == "__main__":
    main()
