"""Benchmark: our Python per request, in-process, without gRPC (the part of a Check or a batch
that this project's code decides, as opposed to grpc.aio's own per-call cost).

    python benchmarks/inprocess.py                      # check, batch50, batch100, filter100; log on
    python benchmarks/inprocess.py --kinds check --no-audit --calls 50000 --rules 100000
    valgrind --tool=callgrind python benchmarks/inprocess.py --kinds check --callgrind

A real server is started in-process (`start_server`: SQLite, the example policies and the
generated world of benchmarks/world.py, `--rules` lines); requests are then drawn from the
world as serve.py draws them (attributes on every request, most of them new, allows and every
kind of denial; `names-check` is the constant names-only Check of the example set) and driven
straight through the edge guard (authentication, rate limits) and a servicer wired to the
server's own registry, decision log and threat monitor, and each response is serialised.
Reported: CPU time of the calling thread per call (the median of three rounds, each on
requests not sent before). The decision log's flusher thread and writer
process are not in that number; `benchmarks/serve.py` measures everything together.

With `--callgrind` (run under valgrind) the counters are zeroed before the measured calls and
dumped after one round: the dump's total instructions divided by `--calls` is a per-call count
that does not depend on the machine's noise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import serve  # noqa: E402 - the policies and the names-only Check of the serving benchmark
import traffic  # noqa: E402
from world import World  # noqa: E402

from policy_engine.config import AuditSettings, SecuritySettings, Settings, ThreatSettings  # noqa: E402
from policy_engine.config import RateLimitSettings, RateSettings  # noqa: E402
from policy_engine.server.app import start_server  # noqa: E402
from policy_engine.server.security import build_guard, build_subject_resolver  # noqa: E402
from policy_engine.server.servicers import AuthorizationServicer  # noqa: E402
from policy_engine.service import DecisionService  # noqa: E402
from policy_engine.v1 import authorization_pb2  # noqa: E402

SERVICE = "/policy_engine.v1.AuthorizationService/"
KINDS = (*traffic.PHASES, "names-check")
_MESSAGE_TYPES = {"Check": authorization_pb2.CheckRequest, "BatchCheck": authorization_pb2.BatchCheckRequest,
                  "FilterAllowed": authorization_pb2.FilterAllowedRequest}


class _Context:
    """What the guard and the servicer read of a grpc.aio ServicerContext."""

    def time_remaining(self) -> float:
        return 30.0

    def peer(self) -> str:
        return "ipv4:127.0.0.1:40000"

    def invocation_metadata(self) -> tuple[()]:
        return ()

    def auth_context(self) -> dict[str, Any]:
        return {}


def requests(world: World, kind: str, count: int) -> tuple[str, list[Any], int]:
    """(method, `count` request messages, decisions per request) of a kind."""
    if kind == "names-check":
        return "Check", [serve.NAMES_CHECK] * count, 1
    phase = traffic.PHASES[kind]
    drawn = traffic.draw(world, kind, count, seed=17)
    parse = _MESSAGE_TYPES[phase.method].FromString
    return phase.method, [parse(message) for message in drawn.messages], phase.size


async def run(scratch: Path, kinds: list[str], calls: int, audit: bool, rules: int, callgrind: bool) -> None:
    policies = scratch / "policies"
    world = World.generate(rules)
    serve.write_policies(policies, world)
    unlimited = RateSettings(1e9, 1e9)
    security = SecuritySettings(
        rate_limits=RateLimitSettings(caller=unlimited, subject=unlimited, decisions=unlimited)
    )
    settings = Settings(
        listen="127.0.0.1:0",
        db_url=f"sqlite:///{scratch / 'pe.db'}",
        policies=policies,
        security=security,
        audit=AuditSettings(enabled=audit, spill_dir=scratch / "audit"),
        threats=ThreatSettings(),
    )
    running = await start_server(settings)
    try:
        while not running.registry.snapshot():
            await asyncio.sleep(0.05)
        guard = build_guard(security)
        servicer = AuthorizationServicer(
            DecisionService(
                running.registry,
                subjects=build_subject_resolver(security),
                sink=running.sink,
                threats=running.threats,
            )
        )
        context = _Context()
        for kind in kinds:
            count = calls if kind.endswith("check") else max(calls // 10, 100)
            warm = min(count, 2000)
            method, messages, decisions = requests(world, kind, warm + 3 * count)
            handler = getattr(servicer, method)
            path = SERVICE + method
            stream = iter(messages)

            async def call() -> None:
                request = next(stream)
                peer = context.peer()
                guard.enter(peer)
                try:
                    guard.admit(request, context, path)
                    (await handler(request, context)).SerializeToString()
                finally:
                    guard.leave(peer)

            for _ in range(warm):  # warm: caches, memo, first flushes
                await call()
            if callgrind:
                os.system(f"callgrind_control --zero {os.getpid()} >/dev/null")
                for _ in range(count):
                    await call()
                os.system(f"callgrind_control --dump={kind} {os.getpid()} >/dev/null")
                print(f"{kind}: {count} calls in the callgrind dump '{kind}'")
                continue
            rounds = []
            for _ in range(3):
                started = time.thread_time()
                for _ in range(count):
                    await call()
                rounds.append((time.thread_time() - started) / count * 1e6)
                await asyncio.sleep(0.2)  # let the log's flusher run between rounds
            print(f"{kind:10s} {statistics.median(rounds):8.1f} µs per call "
                  f"({statistics.median(rounds) / decisions:.2f} µs per decision; rounds "
                  f"{', '.join(f'{r:.1f}' for r in rounds)}), decision log {'on' if audit else 'off'}")
    finally:
        await running.stop(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kinds", default="check,batch50,batch100,filter100",
                        help=f"comma-separated, of: {', '.join(KINDS)}")
    parser.add_argument("--calls", type=int, default=20_000, help="calls per round (batches: divide by 10)")
    parser.add_argument("--no-audit", action="store_true", help="decision log off")
    parser.add_argument("--rules", type=int, default=10_000, help="size of the generated world, in policy lines")
    parser.add_argument("--small", action="store_const", dest="rules", const=1_000,
                        help="a 1,000-rule world (faster start)")
    parser.add_argument("--callgrind", action="store_true", help="zero and dump callgrind's counters")
    args = parser.parse_args()
    kinds = [kind for kind in args.kinds.split(",") if kind]
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown:
        parser.error(f"unknown kinds: {', '.join(unknown)}")
    with tempfile.TemporaryDirectory(prefix="pe-inprocess-") as scratch:
        os.chdir(scratch)  # the decision log's generated key and spill files stay in the scratch folder
        asyncio.run(run(Path(scratch), kinds, args.calls, not args.no_audit, args.rules, args.callgrind))


if __name__ == "__main__":
    main()
