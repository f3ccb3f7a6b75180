"""Benchmark: what a rate-limit bucket and a denial window cost, in this process and in Redis.

    python benchmarks/counters.py                      # 5,000 calls each, 3 runs
    python benchmarks/counters.py --redis redis://127.0.0.1:6379/15 --calls 20000

Reported per run (no assertions; the machine is shared, so compare the best of several
runs): microseconds per `take` (one token bucket, as each rate limit spends per request: a
Check spends three) and per `burst` (one denial counted in a window, as each denial spends
three with an actor), for LocalCounters and for RedisCounters (one Lua script per call over a
loopback TCP connection). The keys live under a fresh prefix, deleted at the end.
"""

from __future__ import annotations

import argparse
import time
import uuid

import redis

from policy_engine.service.counters import LocalCounters, RedisCounters


def _per_call(call, calls: int) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    for n in range(calls):
        call(n)
    return (time.perf_counter() - started) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    prefix = f"pe-bench-{uuid.uuid4().hex[:8]}:"
    shared = RedisCounters(args.redis, prefix=prefix)
    local = LocalCounters()
    try:
        for run in range(args.repeat):
            for name, counters in (("local", local), ("redis", shared)):
                take = _per_call(lambda n, c=counters: c.take(f"caller|k{n % 100}", 1e6, 1e6), args.calls)
                burst = _per_call(lambda n, c=counters: c.burst(f"pair|k{n % 100}", "bob", 60, 10**9), args.calls)
                print(f"run {run + 1} {name:5s}  take {take:7.1f} us/call   burst {burst:7.1f} us/call")
    finally:
        shared.close()
        client = redis.Redis.from_url(args.redis)
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


if __name__ == "__main__":
    main()
