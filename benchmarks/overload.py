#!/usr/bin/env python3
"""Overload benchmark: a real `policy-engine serve` driven at about 10x its capacity.

    .venv/bin/python benchmarks/overload.py
    .venv/bin/python benchmarks/overload.py --overload-inflight 2000 --duration 10
    .venv/bin/python benchmarks/overload.py --no-admission     # the same load, shedding off

Starts the server (SQLite, the example policies, rate limits out of the way, the
admission settings given), then:

1. unloaded: one Check at a time, p50/p99;
2. capacity: `--clients` processes with `--capacity-inflight` Checks in flight in
   total, closed loop: the server's Checks/s when saturated;
3. overload: `--clients` processes, each keeping its share of `--overload-inflight`
   Checks in flight for `--duration` seconds (each call with a `--deadline`); a refused
   call waits the server's `retry-after-ms` hint, as the SDK does, before its worker
   sends again (`--no-backoff`: again at once). Offered load is reported as a multiple
   of the capacity measured in 2.

Prints p50/p99 of accepted Checks, p50/p99 of refusals (RESOURCE_EXHAUSTED), and the
count of every status. Numbers, not assertions: tests never time anything.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from probes import check_request, free_port  # noqa: E402
from serve import wait_ready  # noqa: E402

from policy_engine.server.admission import TIMEOUT_HEADER  # noqa: E402
from policy_engine.v1 import authorization_pb2_grpc  # noqa: E402


def start_server(port: int, scratch: Path, admission: bool, budget_ms: float) -> subprocess.Popen[bytes]:
    shutil.copytree(ROOT / "policies" / "default", scratch / "policies" / "default")
    config = scratch / "overload.yaml"
    config.write_text(
        "rate_limits:\n"
        "  caller: {rate: 1000000000, burst: 1000000000}\n"
        "  subject: {rate: 1000000000, burst: 1000000000}\n"
        "  decisions: {rate: 1000000000, burst: 1000000000}\n"
        "  max_concurrent_rpcs: 100000\n"
        "  max_per_connection: 100000\n"
        "admission:\n"
        f"  enabled: {'true' if admission else 'false'}\n"
        f"  queue_budget_ms: {budget_ms}\n"
    )
    command = [
        str(Path(sys.executable).parent / "policy-engine"), "serve",
        "--listen", f"127.0.0.1:{port}", "--db", f"sqlite:///{scratch / 'pe.db'}",
        "--policies", str(scratch / "policies"), "--config", str(config),
    ]
    log = (scratch / "serve.log").open("w")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, cwd=scratch)
    wait_ready(f"127.0.0.1:{port}", check_request().SerializeToString())
    return process


def _retry_after(error: grpc.aio.AioRpcError) -> float:
    for key, value in error.trailing_metadata() or ():
        if key == "retry-after-ms":
            return float(value) / 1000
    return 0.0


async def _load(
    target: str, inflight: int, duration: float, deadline: float, backoff: bool, header: bool
) -> list[tuple[str, float, float]]:
    """(status name, seconds, seconds into the phase) of every call made by `inflight`
    closed-loop workers."""
    results: list[tuple[str, float, float]] = []
    # As the SDK does: the attempt's timeout, so the server can tell how long a call queued.
    metadata = ((TIMEOUT_HEADER, str(round(deadline * 1000))),) if header else None
    async with grpc.aio.insecure_channel(target) as channel:
        stub = authorization_pb2_grpc.AuthorizationServiceStub(channel)
        with contextlib.suppress(grpc.aio.AioRpcError):
            await stub.Check(check_request(), timeout=10)
        begin = time.perf_counter()
        stop = time.monotonic() + duration

        async def worker() -> None:
            while time.monotonic() < stop:
                started = time.perf_counter()
                try:
                    await stub.Check(check_request(), timeout=deadline, metadata=metadata)
                    results.append(("OK", time.perf_counter() - started, started - begin))
                except grpc.aio.AioRpcError as error:
                    results.append((error.code().name, time.perf_counter() - started, started - begin))
                    if backoff and error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                        await asyncio.sleep(_retry_after(error))

        await asyncio.gather(*(worker() for _ in range(inflight)))
    return results


def _client(*args: object) -> None:
    *call, out = args
    out.put(asyncio.run(_load(*call)))  # type: ignore[arg-type, attr-defined]


def drive(
    target: str, clients: int, inflight: int, duration: float, deadline: float, backoff: bool, header: bool = True
) -> list[tuple[str, float, float]]:
    out: mp.Queue = mp.Queue()
    shares = [inflight // clients + (1 if i < inflight % clients else 0) for i in range(clients)]
    processes = [
        mp.Process(target=_client, args=(target, share, duration, deadline, backoff, header, out)) for share in shares if share
    ]
    for process in processes:
        process.start()
    results = [item for _ in processes for item in out.get(timeout=duration + 120)]
    for process in processes:
        process.join()
    return results


def unloaded(target: str, count: int) -> list[float]:
    times = []
    with grpc.insecure_channel(target) as channel:
        stub = authorization_pb2_grpc.AuthorizationServiceStub(channel)
        for _ in range(50):
            with contextlib.suppress(grpc.RpcError):
                stub.Check(check_request(), timeout=10)
        for _ in range(count):
            started = time.perf_counter()
            try:
                stub.Check(check_request(), timeout=10)
            except grpc.RpcError as error:  # a host stall past the budget: counted, not timed
                if error.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                    raise
                print("  (an unloaded Check was refused)")
                continue
            times.append(time.perf_counter() - started)
    return times


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(values: list[float]) -> str:
    return f"p50 {pct(values, 0.5) * 1000:7.2f} ms  p99 {pct(values, 0.99) * 1000:7.2f} ms  (n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--capacity-inflight", type=int, default=32)
    parser.add_argument("--overload-inflight", type=int, default=2000)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--settle", type=float, default=2.0, help="overload seconds left out of the numbers")
    parser.add_argument("--deadline", type=float, default=5.0, help="each call's deadline, seconds")
    parser.add_argument("--budget-ms", type=float, default=20.0, help="admission.queue_budget_ms")
    parser.add_argument("--no-admission", action="store_true", help="admission.enabled: false")
    parser.add_argument("--no-backoff", action="store_true", help="refused calls are sent again at once")
    parser.add_argument("--no-timeout-header", action="store_true", help=f"calls without {TIMEOUT_HEADER}")
    args = parser.parse_args()

    port = free_port()
    target = f"127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as folder:
        server = start_server(port, Path(folder), not args.no_admission, args.budget_ms)
        try:
            quiet = unloaded(target, 500)
            print(f"unloaded Check (1 in flight):           {ms(quiet)}")
            saturated = drive(target, args.clients, args.capacity_inflight, args.duration / 2, args.deadline, True)
            capacity = sum(1 for status, _, _ in saturated if status == "OK") / (args.duration / 2)
            print(f"capacity ({args.capacity_inflight} in flight):               {capacity:9.0f} Checks/s  "
                  f"{ms([t for s, t, _ in saturated if s == 'OK'])}")
            results = drive(
                target, args.clients, args.overload_inflight, args.duration, args.deadline,
                not args.no_backoff, not args.no_timeout_header,
            )
            measured = args.duration - args.settle
            results = [(status, t) for status, t, at in results if at >= args.settle]
            sent = len(results) / measured
            accepted = [t for status, t in results if status == "OK"]
            refused = [t for status, t in results if status == "RESOURCE_EXHAUSTED"]
            print(f"overload ({args.overload_inflight} in flight, backoff {'off' if args.no_backoff else 'on'}, "
                  f"admission {'off' if args.no_admission else 'on'}, "
                  f"{TIMEOUT_HEADER} {'off' if args.no_timeout_header else 'on'}): answered {sent:.0f} calls/s "
                  f"= {sent / capacity:.1f}x capacity, accepted {len(accepted) / measured:.0f}/s (calls sent after the first {args.settle:g} s)")
            print(f"  accepted Checks:                      {ms(accepted)}")
            print(f"  refusals (RESOURCE_EXHAUSTED):        {ms(refused)}")
            counts: dict[str, int] = {}
            for status, _ in results:
                counts[status] = counts.get(status, 0) + 1
            print("  statuses: " + ", ".join(f"{name} {count}" for name, count in sorted(counts.items())))
            if accepted and quiet:
                print(f"  accepted p99 / unloaded p99: {pct(accepted, 0.99) / pct(quiet, 0.99):.1f}x; "
                      f"median of accepted {statistics.median(accepted) * 1000:.2f} ms")
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()


if __name__ == "__main__":
    main()
