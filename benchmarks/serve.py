#!/usr/bin/env python3
"""Serving benchmark: the real server against a trivial echo gRPC server, same load, one run.

    .venv/bin/python benchmarks/serve.py                  # 1 server process
    .venv/bin/python benchmarks/serve.py --workers 2      # `serve --workers 2`: N processes, one port
    .venv/bin/python benchmarks/serve.py --phases check   # only Check against echo
    .venv/bin/python benchmarks/serve.py --repeat 3       # every phase 3 times, medians of the bars

Starts `policy-engine serve` (SQLite, the example policies plus a generated
set of 100,000 rules) and an echo server (grpc.aio, the same server options,
answering Check with a constant), then drives both with the same load
generator: `--clients` processes, `--inflight` requests in flight in total,
each phase bounded by `--duration` seconds after a warm-up. Prints Check RPS,
p50, p99 for both and the ratio; BatchCheck and FilterAllowed decisions/s at
10, 100 and 1,000 items; FilterAllowed of 100 tools at 100k rules, unloaded;
the server's CPU use in each phase (all its processes); and, from the server's
metrics, how many decision-log entries were written and how many were lost
(queue still full after audit.max_wait_seconds) over the whole run. Numbers, not assertions: tests never
time anything.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from policy_engine import limits  # noqa: E402
from policy_engine.v1 import authorization_pb2, authorization_pb2_grpc, types_pb2  # noqa: E402

BIG_RULES = 100_000
BIG_ROLES = 1_000
TICKS = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Echo(authorization_pb2_grpc.AuthorizationServiceServicer):
    """Answers every Check with the same constant response: the floor of grpc.aio serving cost."""

    RESPONSE = authorization_pb2.CheckResponse(allowed=True, policy_version=1, decision_id="0" * 32)

    async def Check(self, request, context):  # type: ignore[no-untyped-def] # noqa: N802
        return self.RESPONSE


# The real server's settings in this benchmark (see start_real), given to the echo server too.
MAX_CONCURRENT_RPCS = 100_000


async def _echo_main(port: int) -> None:
    server = grpc.aio.server(
        options=[("grpc.max_receive_message_length", limits.MAX_MESSAGE_BYTES)],
        maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS,
    )
    authorization_pb2_grpc.add_AuthorizationServiceServicer_to_server(_Echo(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def write_policies(folder: Path) -> None:
    """policies/default (the example) and policies/big: 100k rules, 1k roles, 2k users."""
    shutil.copytree(ROOT / "policies" / "default", folder / "default")
    big = folder / "big"
    big.mkdir()
    shutil.copy(ROOT / "policies" / "default" / "model.conf", big / "model.conf")
    lines = [f"g, user{i}, role{i % BIG_ROLES}, acme" for i in range(2 * BIG_ROLES)]
    lines += [f"p, role{i % BIG_ROLES}, *, tool:t{i}, invoke, True, allow" for i in range(BIG_RULES)]
    (big / "policy.csv").write_text("\n".join(lines) + "\n")


def wait_ready(target: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    request = check_request()
    with grpc.insecure_channel(target) as channel:
        stub = authorization_pb2_grpc.AuthorizationServiceStub(channel)
        while time.monotonic() < deadline:
            try:
                stub.Check(request, timeout=2)
                return
            except grpc.RpcError:
                time.sleep(0.2)
    raise SystemExit(f"server at {target} did not answer in {timeout}s")


def start_real(port: int, workers: int, scratch: Path, metrics_port: int, audit: bool = True) -> list[subprocess.Popen[bytes]]:
    policies = scratch / "policies"
    write_policies(policies)
    # The server's default rate limits (per caller, per subject) would measure the limiter, not serving.
    config = scratch / "bench.yaml"
    config.write_text(
        "rate_limits:\n"
        "  caller: {rate: 1000000000, burst: 1000000000}\n"
        "  subject: {rate: 1000000000, burst: 1000000000}\n"
        "  decisions: {rate: 1000000000, burst: 1000000000}\n"
        f"  max_concurrent_rpcs: {MAX_CONCURRENT_RPCS}\n"
        "  max_per_connection: 100000\n"
        + ("" if audit else "audit:\n  enabled: false\n")
    )
    command = [
        str(Path(sys.executable).parent / "policy-engine"), "serve", "--workers", str(workers),
        "--listen", f"127.0.0.1:{port}", "--db", f"sqlite:///{scratch / 'pe.db'}",
        "--policies", str(policies), "--config", str(config), "--log-level", "INFO",
        "--metrics-listen", f"127.0.0.1:{metrics_port}",
    ]
    # cwd: the decision log's spill files and generated key go to ./var/audit
    log = (scratch / "serve.log").open("w")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, cwd=scratch)
    wait_ready(f"127.0.0.1:{port}")
    if workers > 1:  # the supervisor starts the workers one after the other
        deadline = time.monotonic() + 300
        while f"{workers} workers serving" not in (scratch / "serve.log").read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server did not start: {(scratch / 'serve.log').read_text()[-2000:]}")
            time.sleep(0.2)
    return [process]


def audit_counts(metrics_port: int, workers: int) -> dict[str, float]:
    """Decision-log entries by fate (written, spilled, replayed, lost), summed over the workers."""
    totals: dict[str, float] = {}
    for index in range(workers):
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port + index}/metrics", timeout=5).read().decode()
        for line in text.splitlines():
            if line.startswith("policy_engine_audit_entries{"):
                fate = line.split('fate="', 1)[1].split('"', 1)[0]
                totals[fate] = totals.get(fate, 0) + float(line.rsplit(" ", 1)[1])
    return totals


def start_echo(port: int, workers: int) -> list[subprocess.Popen[bytes]]:
    processes = [
        subprocess.Popen([sys.executable, __file__, "--echo-server", str(port)]) for _ in range(workers)
    ]
    wait_ready(f"127.0.0.1:{port}")
    return processes


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def with_children(pids: set[int]) -> set[int]:
    """`pids` and their children (the workers of `serve --workers`, the decision-log writers)."""
    found = set(pids)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat(int(entry.name))[1]) in found:  # ppid
                    found.add(int(entry.name))
            except (OSError, IndexError, ValueError):
                pass
    return found


def cpu_seconds(processes: list[subprocess.Popen[bytes]]) -> float:
    """CPU time of these processes and of their children."""
    total = 0
    for pid in with_children({process.pid for process in processes}):
        try:
            fields = _stat(pid)
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def wait_idle(processes: list[subprocess.Popen[bytes]], limit: float = 60.0) -> float:
    """Seconds until the server's processes use less than 5% of a core over half a second."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        before = cpu_seconds(processes)
        time.sleep(0.5)
        if cpu_seconds(processes) - before < 0.025:
            break
    return time.monotonic() - started


# ---------------------------------------------------------------- requests


def _subject(subject: str = "dave") -> types_pb2.Entity:
    return types_pb2.Entity(id=subject)


def check_request() -> authorization_pb2.CheckRequest:
    return authorization_pb2.CheckRequest(
        tenant="acme", subject=_subject(), action="invoke", resource=types_pb2.Resource(kind="tool", id="web_search")
    )


def batch_request(n: int) -> authorization_pb2.BatchCheckRequest:
    names = ("web_search", "sql_query", "shell_exec", "payments_transfer")
    return authorization_pb2.BatchCheckRequest(
        tenant="acme",
        subject=_subject("bob"),
        items=[
            authorization_pb2.BatchCheckItem(action="invoke", resource=types_pb2.Resource(kind="tool", id=names[i % 4]))
            for i in range(n)
        ],
    )


def filter_request(n: int, policy_set: str = "", subject: str = "bob", prefix: str = "tool_") -> authorization_pb2.FilterAllowedRequest:
    names = ("web_search", "sql_query", "shell_exec", "payments_transfer")
    return authorization_pb2.FilterAllowedRequest(
        policy_set=policy_set,
        tenant="acme",
        subject=_subject(subject),
        action="invoke",
        candidates=[
            types_pb2.Resource(kind="tool", id=names[i % 4] if prefix == "tool_" else f"{prefix}{i * 997 % BIG_RULES}")
            for i in range(n)
        ],
    )


REQUESTS: dict[str, Callable[[], tuple[str, Any, int]]] = {
    "check": lambda: ("Check", check_request(), 1),
    **{f"batch{n}": (lambda n=n: ("BatchCheck", batch_request(n), n)) for n in (10, 100, 1000)},
    **{f"filter{n}": (lambda n=n: ("FilterAllowed", filter_request(n), n)) for n in (10, 100, 1000)},
    "filter_big": lambda: ("FilterAllowed", filter_request(100, "big", "user7", "t"), 100),
}


# ---------------------------------------------------------------- load


def _client(
    target: str, kind: str, inflight: int, connections: int, warmup: float, duration: float, out: Any
) -> None:
    method, request, _ = REQUESTS[kind]()

    async def run() -> list[float]:
        # A local subchannel pool per channel: otherwise channels of one process to one target
        # share a single TCP connection.
        channels = [
            grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
            for _ in range(connections)
        ]
        calls = [getattr(authorization_pb2_grpc.AuthorizationServiceStub(channel), method) for channel in channels]
        latencies: list[float] = []
        start = time.perf_counter()
        measure_from, stop_at = start + warmup, start + warmup + duration

        async def worker(call: Any) -> None:
            while (now := time.perf_counter()) < stop_at:
                await call(request, timeout=30)
                done = time.perf_counter()
                if now >= measure_from:
                    latencies.append(done - now)

        try:
            await asyncio.gather(*(worker(calls[i % connections]) for i in range(inflight)))
        finally:
            for channel in channels:
                await channel.close()
        return latencies

    out.send(asyncio.run(run()))
    out.close()


def drive(
    target: str, kind: str, clients: int, inflight: int, connections: int, warmup: float, duration: float
) -> dict[str, float]:
    """`clients` processes with `inflight` requests in flight in total, spread over `connections`
    connections per process, for `duration` seconds."""
    context = mp.get_context("spawn")
    pipes, processes = [], []
    per_client = [inflight // clients + (1 if i < inflight % clients else 0) for i in range(clients)]
    for count in per_client:
        receive, send = context.Pipe(duplex=False)
        process = context.Process(target=_client, args=(target, kind, count, connections, warmup, duration, send))
        process.start()
        pipes.append(receive)
        processes.append(process)
    latencies = sorted(lat for pipe in pipes for lat in pipe.recv())
    for process in processes:
        process.join()
    _, _, items = REQUESTS[kind]()
    count = len(latencies)
    return {
        "rps": count / duration,
        "decisions": count * items / duration,
        "p50": latencies[count // 2] * 1000 if count else float("nan"),
        "p99": latencies[min(count - 1, int(count * 0.99))] * 1000 if count else float("nan"),
    }


def unloaded(target: str, kind: str, count: int) -> dict[str, float]:
    """One request at a time: the latency of a single call with nothing else going on."""
    method, request, _ = REQUESTS[kind]()
    with grpc.insecure_channel(target) as channel:
        call = getattr(authorization_pb2_grpc.AuthorizationServiceStub(channel), method)
        for _ in range(20):
            call(request, timeout=30)
        latencies = []
        for _ in range(count):
            start = time.perf_counter()
            call(request, timeout=30)
            latencies.append(time.perf_counter() - start)
    latencies.sort()
    return {
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "max": latencies[-1] * 1000,
    }


# ---------------------------------------------------------------- main


def _summary(values: list[float], unit: str = "", spec: str = ".2f") -> str:
    """One measure, or the median of several with each of them."""
    if len(values) == 1:
        return f"{values[0]:{spec}}{unit}"
    each = ", ".join(f"{value:{spec}}" for value in values)
    return f"{statistics.median(values):{spec}}{unit} (median of {len(values)}: {each})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1, help="server processes sharing the port (SO_REUSEPORT)")
    parser.add_argument("--clients", type=int, default=4, help="load generator processes")
    parser.add_argument("--inflight", type=int, default=64, help="requests in flight, in total")
    parser.add_argument("--connections", type=int, default=2,
                        help="connections per client process (with --workers, the kernel spreads "
                             "connections, not requests, over the workers)")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds measured per phase")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring, per phase")
    parser.add_argument("--no-audit", action="store_true",
                        help="disable the decision log (to see what serving costs without it)")
    parser.add_argument("--phases", default="all",
                        help="comma-separated subset of: check, batch, filter, unloaded (default: all)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run each phase this many times (echo and Check alternating) and print "
                             "the median of the bar's measures: runs here differ by up to 30%%")
    parser.add_argument("--echo-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.echo_server:
        asyncio.run(_echo_main(args.echo_server))
        return

    print(f"machine: {os.cpu_count()} cores; server workers: {args.workers}; client processes: {args.clients}; "
          f"in flight: {args.inflight}; connections: {args.clients * args.connections}; "
          f"{args.duration:g}s per phase after {args.warmup:g}s warm-up; "
          f"load average before: {os.getloadavg()[0]:.2f}; decision log: {'off' if args.no_audit else 'on'}")
    phases = {"check", "batch", "filter", "unloaded"} if args.phases == "all" else set(args.phases.split(","))
    phase = dict(clients=args.clients, inflight=args.inflight, connections=args.connections,
                 warmup=args.warmup, duration=args.duration)
    with tempfile.TemporaryDirectory(prefix="pe-bench-") as scratch:
        echo_port, real_port, metrics_port = free_port(), free_port(), free_port()
        echo = start_echo(echo_port, args.workers)
        started = time.monotonic()
        real = start_real(real_port, args.workers, Path(scratch), metrics_port, audit=not args.no_audit)
        print(f"real server ready in {time.monotonic() - started:.1f}s (example set + {BIG_RULES:,}-rule set)")
        try:
            rows = []

            def measure(name: str, target: str, kind: str, processes: list[subprocess.Popen[bytes]]) -> dict[str, float]:
                cpu, wall = cpu_seconds(processes), time.monotonic()
                result = drive(target, kind, **phase)
                # over the whole phase (client start-up and warm-up included): an average, not a peak
                result["cpu"] = (cpu_seconds(processes) - cpu) / (time.monotonic() - wall)
                rows.append((name, result))
                print(f"{name:<28} {result['rps']:>9,.0f} RPS {result['decisions']:>10,.0f} decisions/s  "
                      f"p50 {result['p50']:6.2f} ms  p99 {result['p99']:6.2f} ms  server CPU {result['cpu']:.2f} cores",
                      flush=True)
                return result

            repeat = args.repeat
            if "check" in phases:
                # Echo and Check alternate, so that each ratio compares neighbouring minutes.
                ratios, p99_ratios = [], []
                for _ in range(repeat):
                    echo_result = measure("echo Check", f"127.0.0.1:{echo_port}", "check", echo)
                    check_result = measure("Check", f"127.0.0.1:{real_port}", "check", real)
                    ratios.append(check_result["rps"] / echo_result["rps"])
                    p99_ratios.append(check_result["p99"] / echo_result["p99"])
                print(f"Check / echo: RPS ratio {_summary(ratios)} (bar >= 0.80), "
                      f"p99 ratio {_summary(p99_ratios)} (bar <= 1.50)")
            batch100: list[float] = []
            for _ in range(repeat if "batch" in phases else 0):
                for n in (10, 100, 1000):
                    result = measure(f"BatchCheck x{n}", f"127.0.0.1:{real_port}", f"batch{n}", real)
                    if n == 100:
                        batch100.append(result["decisions"])
            for _ in range(repeat if "filter" in phases else 0):
                for n in (10, 100, 1000):
                    measure(f"FilterAllowed x{n}", f"127.0.0.1:{real_port}", f"filter{n}", real)
            if "unloaded" in phases:
                big_p99 = []
                for _ in range(repeat):
                    # After the loaded phases the server may still finish abandoned calls and the
                    # decision-log writer drain its queue; wait until the server is idle.
                    idle_after = wait_idle(real)
                    big = unloaded(f"127.0.0.1:{real_port}", "filter_big", 500)
                    big_p99.append(big["p99"])
                    print(f"FilterAllowed x100 at {BIG_RULES:,} rules, unloaded: p50 {big['p50']:.2f} ms  "
                          f"p99 {big['p99']:.2f} ms  max {big['max']:.2f} ms (bar p99 <= 5 ms; "
                          f"server idle after {idle_after:.1f}s)")
                if repeat > 1:
                    print(f"FilterAllowed x100 at {BIG_RULES:,} rules, unloaded: p99 {_summary(big_p99, ' ms')}")
            if batch100:
                print(f"BatchCheck x100: {_summary(batch100, ' decisions/s', ',.0f')} (bar >= 60,000)")
            time.sleep(2.5)  # the gauges are refreshed every second; let the writers catch up
            fates = audit_counts(metrics_port, args.workers)
            print("decision log over the run: " + ", ".join(f"{fate} {count:,.0f}" for fate, count in sorted(fates.items()))
                  + " (lost: the queue still full after the backpressure wait)")
        finally:
            for process in echo + real:
                process.terminate()
            for process in echo + real:
                process.wait(60)


if __name__ == "__main__":
    main()
