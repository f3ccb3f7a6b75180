"""Token buckets per key (caller, subject) and concurrency caps per connection.

Bounded memory: the least recently used keys are forgotten first, which can
only ever give a forgotten key a full bucket again.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["ConnectionLimiter", "RateLimiter"]


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """`try_acquire(key)` spends one token of `key`'s bucket (or `cost` tokens, at most a full
    bucket: a cost above the burst empties it rather than never passing); returns seconds to
    wait, or 0."""

    def __init__(self, rate: float, burst: float, max_keys: int = 100_000) -> None:
        self._rate = rate
        self._burst = burst
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def try_acquire(self, key: str, now: float | None = None, cost: float = 1.0) -> float:
        moment = time.monotonic() if now is None else now
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(self._burst, moment)
            self._buckets[key] = bucket
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket.tokens = min(self._burst, bucket.tokens + (moment - bucket.updated) * self._rate)
            bucket.updated = moment
        cost = min(cost, self._burst)
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            return 0.0
        return (cost - bucket.tokens) / self._rate


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
