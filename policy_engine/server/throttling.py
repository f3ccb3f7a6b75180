"""Token buckets per key (caller, subject) and concurrency caps per connection.

The buckets live in a Counters (service/counters.py): this process's own by
default, shared by every replica through Redis when `redis.url` is configured.
"""

from __future__ import annotations

from policy_engine.service.counters import Counters, LocalCounters

__all__ = ["ConnectionLimiter", "RateLimiter"]


class RateLimiter:
    """`try_acquire(key)` spends one token of `key`'s bucket (or `cost` tokens, at most a full
    bucket: a cost above the burst empties it rather than never passing); returns seconds to
    wait, or 0. `name` keeps the keys of limiters sharing one Counters apart."""

    def __init__(
        self,
        rate: float,
        burst: float,
        max_keys: int = 100_000,
        *,
        counters: Counters | None = None,
        name: str = "",
    ) -> None:
        self._rate = rate
        self._burst = burst
        self._counters: Counters = counters if counters is not None else LocalCounters(max_keys)
        self._prefix = f"{name}|" if name else ""

    def try_acquire(self, key: str, now: float | None = None, cost: float = 1.0) -> float:
        return self._counters.take(self._prefix + key, self._rate, self._burst, cost, now)


class ConnectionLimiter:
    """At most `limit` requests in flight per connection (peer address)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._in_flight: dict[str, int] = {}

    def enter(self, peer: str) -> bool:
        count = self._in_flight.get(peer, 0)
        if count >= self._limit:
            return False
        self._in_flight[peer] = count + 1
        return True

    def leave(self, peer: str) -> None:
        count = self._in_flight.get(peer, 1) - 1
        if count <= 0:
            self._in_flight.pop(peer, None)
        else:
            self._in_flight[peer] = count
