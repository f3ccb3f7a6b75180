#!/usr/bin/env python3
"""Serving benchmark on realistic traffic: the real server against a bare echo server, same messages.

    .venv/bin/python benchmarks/serve.py                       # 10,000-rule world, 1 server process
    .venv/bin/python benchmarks/serve.py --rules 100000        # the 100,000-rule world
    .venv/bin/python benchmarks/serve.py --workers 2           # `serve --workers 2`: N processes, one port
    .venv/bin/python benchmarks/serve.py --phases check,names-check --repeat 3

Generates the LLM-actions world of benchmarks/world.py (seeded: `--seed`), writes
its policy set next to the example set, and starts `policy-engine serve` (SQLite,
its defaults, decision log on, rate limits lifted) and an echo server (grpc.aio,
the same server options, answering each method with a constant response of the
request's size). Per phase, a fresh stream of the world's requests (attributes on
every subject and resource, `--repeat-rate` of them re-sent, a mix of allows and
every kind of denial) is sent to both by the same load generator (benchmarks/load.py).

Phases: check (Check), batch50 and batch100 (BatchCheck), filter100 (FilterAllowed);
and, only when asked, names-check: the constant names-only Check of the example set
(alice's web_search without attributes), which measures a remembered answer, not
the decision path. Printed per phase and server: decisions/s, p50, p99, CPU per
decision of all the server's processes (from /proc, until the server is idle
again, so the decision log's writing is included), the ratios to echo, the
errors, and the sample check: every `--sample-every`-th answer against the
world's expected decision, and the first `--oracle-sample` of those against
pycasbin too. At the end: the decision cache's hit ratio and the decision log's
entries by fate, from the server's metrics. Numbers, not assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))

import load  # noqa: E402
import traffic  # noqa: E402
from oracle import Oracle  # noqa: E402
from world import World  # noqa: E402

from policy_engine import limits  # noqa: E402
from policy_engine.v1 import authorization_pb2, authorization_pb2_grpc, types_pb2  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")
# The real server's settings in this benchmark (see start_real), given to the echo server too.
MAX_CONCURRENT_RPCS = 100_000
NAMES_CHECK = authorization_pb2.CheckRequest(
    tenant="acme", subject=types_pb2.Entity(id="dave"), action="invoke",
    resource=types_pb2.Resource(kind="tool", id="web_search"),
)


# ---------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Echo(authorization_pb2_grpc.AuthorizationServiceServicer):
    """Answers with constant responses shaped like the real ones: the floor of grpc.aio serving cost."""

    CHECK = authorization_pb2.CheckResponse(allowed=True, policy_version=1, decision_id="0" * 32,
                                            reason="allowed by a rule")

    def __init__(self) -> None:
        self._batches: dict[int, authorization_pb2.BatchCheckResponse] = {}

    async def Check(self, request, context):  # type: ignore[no-untyped-def] # noqa: N802
        return self.CHECK

    async def BatchCheck(self, request, context):  # type: ignore[no-untyped-def] # noqa: N802
        size = len(request.items)
        response = self._batches.get(size)
        if response is None:
            result = authorization_pb2.BatchCheckResult(allowed=True, reason="allowed by a rule", decision_id="0" * 32)
            response = self._batches[size] = authorization_pb2.BatchCheckResponse(
                policy_version=1, results=[result] * size)
        return response

    async def FilterAllowed(self, request, context):  # type: ignore[no-untyped-def] # noqa: N802
        return authorization_pb2.FilterAllowedResponse(
            policy_version=1, allowed=request.candidates, allowed_indexes=range(len(request.candidates)))


async def _echo_main(port: int) -> None:
    server = grpc.aio.server(
        options=[("grpc.max_receive_message_length", limits.MAX_MESSAGE_BYTES)],
        maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS,
    )
    authorization_pb2_grpc.add_AuthorizationServiceServicer_to_server(_Echo(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def write_policies(folder: Path, world: World) -> None:
    """policies/default (the example, for the names-only Check) and the world's set."""
    shutil.copytree(ROOT / "policies" / "default", folder / "default")
    world.write_bundle(folder / traffic.POLICY_SET)


def wait_ready(target: str, probe: bytes, method: str = "Check", timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(load.SERVICE + method)
        while time.monotonic() < deadline:
            try:
                call(probe, timeout=5)
                return
            except grpc.RpcError:
                time.sleep(0.2)
    raise SystemExit(f"server at {target} did not answer in {timeout}s")


def start_real(port: int, workers: int, scratch: Path, metrics_port: int, world: World,
               audit: bool = True) -> list[subprocess.Popen[bytes]]:
    policies = scratch / "policies"
    write_policies(policies, world)
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
    probe = traffic.check_message(world.stream(seed=0).check("allow")).SerializeToString()
    wait_ready(f"127.0.0.1:{port}", probe)
    if workers > 1:  # the supervisor starts the workers one after the other
        deadline = time.monotonic() + 600
        while f"{workers} workers serving" not in (scratch / "serve.log").read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server did not start: {(scratch / 'serve.log').read_text()[-2000:]}")
            time.sleep(0.2)
    return [process]


def start_echo(port: int, workers: int) -> list[subprocess.Popen[bytes]]:
    processes = [subprocess.Popen([sys.executable, __file__, "--echo-server", str(port)]) for _ in range(workers)]
    wait_ready(f"127.0.0.1:{port}", NAMES_CHECK.SerializeToString())
    return processes


def metric_values(metrics_port: int, workers: int, name: str) -> list[tuple[str, float]]:
    """(labels, value) of every sample of `name`, over the workers' metrics endpoints."""
    values = []
    for index in range(workers):
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port + index}/metrics", timeout=5).read().decode()
        for line in text.splitlines():
            if line.startswith(name + "{"):
                values.append((line.split("{", 1)[1].split("}", 1)[0], float(line.rsplit(" ", 1)[1])))
    return values


# ---------------------------------------------------------------- CPU from /proc


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


def wait_idle(processes: list[subprocess.Popen[bytes]], limit: float = 20.0) -> float:
    """Seconds until the server's processes use less than 5% of a core over half a second."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        before = cpu_seconds(processes)
        time.sleep(0.5)
        if cpu_seconds(processes) - before < 0.025:
            break
    return time.monotonic() - started


# ---------------------------------------------------------------- checking answers


def sample_check(world: World, oracle: Oracle, phase: traffic.Traffic, samples: list[tuple[int, bytes]],
                 oracle_limit: int) -> dict[str, int]:
    """Compare sampled answers with the world's expected decisions (and pycasbin's, for the first ones)."""
    checked = wrong = judged = disputed = 0
    for index, response in samples:
        got = traffic.answers(phase.kind, response)
        asks = phase.asks(index)
        if len(got) != len(asks):
            wrong += len(asks)
            continue
        for ask, allowed in zip(asks, got):
            expected = world.expected(ask)[0]
            checked += 1
            wrong += allowed != expected
            if judged < oracle_limit:
                judged += 1
                disputed += oracle.allowed(ask) != expected
    return {"checked": checked, "wrong": wrong, "oracle": judged, "oracle_disagrees": disputed}


# ---------------------------------------------------------------- main


def _summary(values: list[float], spec: str = ".2f") -> str:
    """One measure, or the median of several with each of them."""
    if len(values) == 1:
        return f"{values[0]:{spec}}"
    return f"{statistics.median(values):{spec}} ({', '.join(f'{value:{spec}}' for value in values)})"


def main() -> None:  # noqa: C901 - a script's main, read top to bottom
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=10_000, help="size of the generated world, in policy lines")
    parser.add_argument("--seed", type=int, default=7, help="the world's seed")
    parser.add_argument("--repeat-rate", type=float, default=0.1,
                        help="share of requests re-sent from the recent ones (others are new draws)")
    parser.add_argument("--workers", type=int, default=1, help="server processes sharing the port (SO_REUSEPORT)")
    parser.add_argument("--clients", type=int, default=4, help="load generator processes")
    parser.add_argument("--inflight", type=int, default=64, help="requests in flight, in total")
    parser.add_argument("--connections", type=int, default=2, help="connections per client process")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds measured per phase")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring, per phase")
    parser.add_argument("--no-audit", action="store_true", help="disable the decision log")
    parser.add_argument("--phases", default="check,batch50,batch100,filter100",
                        help="comma-separated, of: check, batch50, batch100, filter100, names-check")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of every phase (medians printed)")
    parser.add_argument("--sample-every", type=int, default=25, help="check every n-th answer of a client")
    parser.add_argument("--oracle-sample", type=int, default=150,
                        help="sampled decisions per phase also judged by pycasbin")
    parser.add_argument("--echo-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.echo_server:
        asyncio.run(_echo_main(args.echo_server))
        return
    phases = [phase for phase in args.phases.split(",") if phase]
    unknown = [phase for phase in phases if phase not in [*traffic.PHASES, "names-check"]]
    if unknown:
        parser.error(f"unknown phases: {', '.join(unknown)}")

    world = World.generate(args.rules, args.seed)
    oracle = Oracle(world)
    print(f"machine: {os.cpu_count()} cores, load average before {os.getloadavg()[0]:.2f}; server workers "
          f"{args.workers}; {args.clients} client processes, {args.inflight} in flight, "
          f"{args.clients * args.connections} connections; {args.duration:g}s per phase after {args.warmup:g}s "
          f"warm-up; decision log {'off' if args.no_audit else 'on'}")
    print(f"world: {world.rule_count:,} rules (seed {args.seed}), {len(world.tenants)} tenants, "
          f"{len(world.users):,} users; requests re-sent: {args.repeat_rate:.0%}")
    load_options = dict(clients=args.clients, inflight=args.inflight, connections=args.connections,
                        warmup=args.warmup, duration=args.duration, sample_every=args.sample_every)
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="pe-bench-") as directory:
        scratch = Path(directory)
        echo_port, real_port, metrics_port = free_port(), free_port(), free_port()
        echo = start_echo(echo_port, args.workers)
        started = time.monotonic()
        (scratch / "real").mkdir()
        real = start_real(real_port, args.workers, scratch / "real", metrics_port, world, audit=not args.no_audit)
        print(f"real server ready in {time.monotonic() - started:.1f}s", flush=True)
        print(f"{'phase':<22}{'decisions/s':>12}{'p50 ms':>9}{'p99 ms':>9}{'CPU µs/dec':>11}"
              f"{'errors':>8}  sample check")
        table: dict[str, dict[str, list[float]]] = {}
        try:
            for round_ in range(args.repeat):
                for kind in phases:
                    if kind == "names-check":
                        messages, size, method, phase = [NAMES_CHECK.SerializeToString()], 1, "Check", None
                        note = "(constant, answered from memory)"
                    else:
                        spec = traffic.PHASES[kind]
                        count = int(spec.rate * (args.warmup + args.duration))
                        phase = traffic.draw(world, kind, count, seed=1_000 * round_ + phases.index(kind) + 1,
                                             repeat_rate=args.repeat_rate)
                        messages, size, method = phase.messages, spec.size, spec.method
                        note = f"(repeats in stream {phase.repeat_rate:.1%})"
                        outcomes = Counter(world.expected(ask)[1] for index in range(len(phase.requests))
                                           for ask in phase.asks(index))
                        total = sum(outcomes.values())
                        print(f"{kind} traffic: {len(messages):,} requests, {total:,} decisions; expected "
                              + ", ".join(f"{name} {count / total:.0%}" for name, count in outcomes.most_common()),
                              flush=True)
                    path = load.save_messages(scratch / f"{kind}-{round_}.bin", messages)
                    order = [("echo", echo_port, echo), ("server", real_port, real)]
                    results = {}
                    for name, port, processes in order if round_ % 2 == 0 else order[::-1]:
                        cpu = cpu_seconds(processes)
                        result = load.drive(f"127.0.0.1:{port}", method, path, size, **load_options)
                        wait_idle(processes)
                        result["cpu_us"] = (cpu_seconds(processes) - cpu) / max(result["completed"] * size, 1) * 1e6
                        results[name] = result
                        check = ""
                        if name == "server" and phase is not None:
                            verdict = sample_check(world, oracle, phase, result["samples"], args.oracle_sample)
                            check = (f"{verdict['wrong']} wrong of {verdict['checked']}; pycasbin disagrees with "
                                     f"the world on {verdict['oracle_disagrees']} of {verdict['oracle']}")
                            if verdict["wrong"] or verdict["oracle_disagrees"] or not verdict["checked"]:
                                failures.append(f"{kind}: {check}")
                        if result["errors"]:
                            failures.append(f"{kind} {name}: {len(result['errors'])} errors, "
                                            f"first: {result['errors'][0]}")
                        if result["wrapped"] and name == "server" and phase is not None:
                            check += " (messages wrapped around: more repeats than stated)"
                        label = f"{kind} {name}"
                        print(f"{label:<22}{result['decisions']:>12,.0f}{result['p50']:>9.2f}{result['p99']:>9.2f}"
                              f"{result['cpu_us']:>11.1f}{len(result['errors']):>8}  {check}", flush=True)
                    row = table.setdefault(kind, {"ratio": [], "cpu_ratio": [], "decisions": []})
                    row["ratio"].append(results["server"]["decisions"] / results["echo"]["decisions"])
                    row["cpu_ratio"].append(results["server"]["cpu_us"] / max(results["echo"]["cpu_us"], 1e-9))
                    row["decisions"].append(results["server"]["decisions"])
                    print(f"{kind}: server / echo decisions/s {row['ratio'][-1]:.2f}, CPU per decision "
                          f"{row['cpu_ratio'][-1]:.2f}x echo's {note}", flush=True)
            print("summary (median over rounds, each round's in brackets):")
            for kind, row in table.items():
                print(f"  {kind:<12} decisions/s {_summary(row['decisions'], ',.0f')}; "
                      f"/ echo {_summary(row['ratio'])}; CPU per decision / echo {_summary(row['cpu_ratio'])}")
            time.sleep(2.5)  # the gauges are refreshed every second
            ratios = [value for labels, value in metric_values(metrics_port, args.workers,
                                                               "policy_engine_cache_hit_ratio")
                      if f'policy_set="{traffic.POLICY_SET}"' in labels]
            fates: dict[str, float] = {}
            for labels, value in metric_values(metrics_port, args.workers, "policy_engine_audit_entries"):
                fate = labels.split('fate="', 1)[1].split('"', 1)[0]
                fates[fate] = fates.get(fate, 0) + value
            print("decision cache hit ratio of the world's set since load, per worker: "
                  + (", ".join(f"{ratio:.1%}" for ratio in ratios) or "not exposed"))
            print("decision log over the run: "
                  + ", ".join(f"{fate} {count:,.0f}" for fate, count in sorted(fates.items())))
        finally:
            for process in echo + real:
                process.terminate()
            for process in echo + real:
                process.wait(60)
    if failures:
        print("\n!!! THE SERVER GAVE WRONG ANSWERS OR ERRORS !!!\n" + "\n".join(failures))
        raise SystemExit(1)
    print("sample check: 0 wrong decisions, 0 errors")


if __name__ == "__main__":
    main()
