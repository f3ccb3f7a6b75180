#!/usr/bin/env python3
"""Push benchmark: what a big push costs the callers of Check, and the serving process's memory.

    .venv/bin/python benchmarks/push.py                      # 250k rules, 4 pushes
    .venv/bin/python benchmarks/push.py --rules 1250000      # ~50 MB bundles
    .venv/bin/python benchmarks/push.py --serve-bin /other/.venv/bin/policy-engine   # another tree

Starts `policy-engine serve` (SQLite, the example policy set), then:

1. idle: a client process sends Checks (`--inflight` in flight) for
   `--duration` seconds; prints p50 and p99;
2. during a push: the same client runs while a bundle of `--rules` rules
   (about 44 bytes each) is pushed without activation; prints p50/p99 over the
   push, its duration, and the ratio to idle;
3. memory: the serving process's RSS (VmRSS, its own, not its children's,
   such as the decision-log writer or the bundle checker) before the first
   push and `--settle` seconds after each of `--pushes` pushes of distinct
   bundles.

Numbers, not assertions: tests never time anything.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from policy_engine.auth.callers import ADMIN_TOKEN_ENV, read_admin_token  # noqa: E402
from policy_engine.client.admin import AdminClient, BundleFiles  # noqa: E402
from probes import check_request, free_port  # noqa: E402
from policy_engine.v1 import authorization_pb2_grpc  # noqa: E402

ROLES = 1_000




def wait_ready(target: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(target) as channel:
        stub = authorization_pb2_grpc.AuthorizationServiceStub(channel)
        while time.monotonic() < deadline:
            try:
                stub.Check(check_request(), timeout=2)
                return
            except grpc.RpcError:
                time.sleep(0.2)
    raise SystemExit(f"server at {target} did not answer in {timeout}s")


def start_server(serve_bin: str, port: int, scratch: Path) -> subprocess.Popen[bytes]:
    config = scratch / "bench.yaml"
    config.write_text(
        "rate_limits:\n"
        "  caller: {rate: 1000000000, burst: 1000000000}\n"
        "  subject: {rate: 1000000000, burst: 1000000000}\n"
        "  decisions: {rate: 1000000000, burst: 1000000000}\n"
    )
    command = [
        serve_bin, "serve", "--listen", f"127.0.0.1:{port}", "--db", f"sqlite:///{scratch / 'pe.db'}",
        "--policies", str(ROOT / "policies"), "--config", str(config), "--log-level", "WARNING",
    ]
    log = (scratch / "serve.log").open("w")
    # The server's local admin credential, in the scratch folder: pushes need it.
    environment = {**os.environ, ADMIN_TOKEN_ENV: str(scratch / "admin-token")}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, cwd=scratch, env=environment)
    wait_ready(f"127.0.0.1:{port}")
    return process


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bundle(rules: int, variant: int) -> BundleFiles:
    model = (ROOT / "policies" / "default" / "model.conf").read_text()
    lines = [f"g, user{i}, role{i % ROLES}, acme" for i in range(2 * ROLES)]
    lines += [f"p, role{i % ROLES}, *, tool:v{variant}t{i}, invoke, True, allow" for i in range(rules)]
    return BundleFiles(model, "\n".join(lines) + "\n", {})


def _client(target: str, inflight: int, stop: Any, out: Any) -> None:
    """Closed loop of Checks until `stop` is set; sends back (start, latency) pairs."""
    import asyncio

    async def run() -> list[tuple[float, float]]:
        channel = grpc.aio.insecure_channel(target)
        call = authorization_pb2_grpc.AuthorizationServiceStub(channel).Check
        samples: list[tuple[float, float]] = []

        async def worker() -> None:
            while not stop.is_set():
                started = time.perf_counter()
                await call(check_request(), timeout=30)
                samples.append((started, time.perf_counter() - started))

        await asyncio.gather(*(worker() for _ in range(inflight)))
        await channel.close()
        return samples

    out.send(asyncio.run(run()))
    out.close()


class Load:
    """A client process sending Checks while the block runs."""

    def __init__(self, target: str, inflight: int) -> None:
        context = mp.get_context("spawn")
        self.stop = context.Event()
        self.receive, send = context.Pipe(duplex=False)
        self.process = context.Process(target=_client, args=(target, inflight, self.stop, send))

    def __enter__(self) -> Load:
        self.process.start()
        time.sleep(1.0)  # connect and warm up; samples before `since` are dropped
        self.since = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.until = time.perf_counter()
        self.stop.set()
        self.samples = [lat for at, lat in self.receive.recv() if self.since <= at <= self.until]
        self.process.join()

    def summary(self) -> dict[str, float]:
        latencies = sorted(self.samples)
        count = len(latencies)
        return {
            "count": count,
            "p50": latencies[count // 2] * 1000 if count else float("nan"),
            "p99": latencies[min(count - 1, int(count * 0.99))] * 1000 if count else float("nan"),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rules", type=int, default=250_000)
    parser.add_argument("--pushes", type=int, default=4)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of the idle phase")
    parser.add_argument("--inflight", type=int, default=2)
    parser.add_argument("--settle", type=float, default=2.0, help="seconds after a push before reading RSS")
    parser.add_argument("--serve-bin", default=str(Path(sys.executable).parent / "policy-engine"))
    args = parser.parse_args()

    port = free_port()
    target = f"127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="pe-push-bench-") as scratch:
        server = start_server(args.serve_bin, port, Path(scratch))
        try:
            first = bundle(args.rules, 0)
            size = len(first.policy.encode()) / 1e6
            print(f"server pid {server.pid}; bundles of {args.rules} rules, {size:.1f} MB; {args.inflight} Checks in flight")
            with Load(target, args.inflight) as idle:
                time.sleep(args.duration)
            quiet = idle.summary()
            print(f"idle:        {quiet['count']:6d} Checks  p50 {quiet['p50']:6.2f} ms  p99 {quiet['p99']:6.2f} ms")

            rss = [rss_mib(server.pid)]
            with AdminClient(target, timeout=600, token=read_admin_token(Path(scratch) / "admin-token")) as admin:
                with Load(target, args.inflight) as during:
                    started = time.perf_counter()
                    admin.push("bench", first, message="push 1", author="bench")
                    took = time.perf_counter() - started
                busy = during.summary()
                print(
                    f"during push: {busy['count']:6d} Checks  p50 {busy['p50']:6.2f} ms  p99 {busy['p99']:6.2f} ms"
                    f"  (p99 {busy['p99'] / quiet['p99']:.2f}x idle; push took {took:.1f} s)"
                )
                time.sleep(args.settle)
                rss.append(rss_mib(server.pid))
                for variant in range(1, args.pushes):
                    admin.push("bench", bundle(args.rules, variant), message=f"push {variant + 1}", author="bench")
                    time.sleep(args.settle)
                    rss.append(rss_mib(server.pid))
            print("serving process RSS (MiB): " + " -> ".join(f"{value:.0f}" for value in rss))
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()


if __name__ == "__main__":
    main()
