"""Counters behind rate limits and threat signals: in this process, or shared by replicas in Redis.

Two kinds of count, both keyed by a string:

- `take`: a token bucket (`rate` per second, at most `burst`) from which a
  request spends `cost`; the answer is 0 (admitted) or the seconds to wait.
- `burst`: events in a sliding window, each by a `member` (a subject); it
  answers True once when more than `limit` events of at least `min_members`
  distinct members fell within the window, and the window starts afresh.

LocalCounters keeps them in this process: N replicas (or `--workers N`) then
give a caller N budgets and a prober N windows. RedisCounters shares them:
each operation is one Lua script, atomic in Redis, timed by Redis's clock (so
replicas on hosts with skewed clocks still agree). The bucket is GCRA, which
is a token bucket held as one timestamp per key; the window is a sorted set
of events and one of members per key. Keys expire when idle.

When Redis fails (unreachable, slow beyond `timeout`), RedisCounters answers
from its own LocalCounters and tries Redis again after `retry_seconds`: limits
and signals then hold per process, as without Redis. Failing closed would let
a Redis outage stop every decision; failing wide open would drop the limits.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Counters", "LocalCounters", "RedisCounters"]

log = logging.getLogger(__name__)


class Counters(Protocol):
    def take(self, key: str, rate: float, burst: float, cost: float = 1.0, now: float | None = None) -> float:
        """Spend `cost` from `key`'s bucket (at most a full bucket); 0, or seconds to wait."""
        ...

    def burst(self, key: str, member: str, window: float, limit: int, min_members: int = 1) -> bool:
        """Count one event of `member`; True (once) when the window holds a burst (see module doc)."""
        ...


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class LocalCounters:
    """Counters in this process. Bounded: the least recently used keys are forgotten first,
    which can only ever give a forgotten key a full bucket (or an empty window) again."""

    def __init__(self, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._windows: OrderedDict[str, deque[tuple[float, str]]] = OrderedDict()

    def take(self, key: str, rate: float, burst: float, cost: float = 1.0, now: float | None = None) -> float:
        moment = self._clock() if now is None else now
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(burst, moment)
            self._buckets[key] = bucket
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket.tokens = min(burst, bucket.tokens + (moment - bucket.updated) * rate)
            bucket.updated = moment
        cost = min(cost, burst)
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            return 0.0
        return (cost - bucket.tokens) / rate

    def burst(self, key: str, member: str, window: float, limit: int, min_members: int = 1) -> bool:
        now = self._clock()
        events = self._windows.get(key)
        if events is None:
            events = self._windows[key] = deque()
            if len(self._windows) > self._max_keys:
                self._windows.popitem(last=False)
        else:
            self._windows.move_to_end(key)
        events.append((now, member))
        while events and events[0][0] < now - window:
            events.popleft()
        if len(events) <= limit or len({m for _, m in events}) < min_members:
            return False
        events.clear()
        return True


# GCRA: the key holds the bucket's "theoretical arrival time" (when it would be full again).
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local next_tat = tat + cost / rate
local wait = next_tat - burst / rate - now
if wait > 0 then return tostring(wait) end
redis.call('SET', KEYS[1], string.format('%.6f', next_tat), 'PX', math.ceil((next_tat - now) * 1000) + 1000)
return '0'
"""

# KEYS: events, members. ARGV: window, member, event id, limit, min_members.
_BURST = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window = tonumber(ARGV[1])
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('ZADD', KEYS[2], now, ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - window))
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. (now - window))
local ttl = math.ceil(window) + 1
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
if redis.call('ZCARD', KEYS[1]) > tonumber(ARGV[4]) and redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[5]) then
  redis.call('DEL', KEYS[1], KEYS[2])
  return 1
end
return 0
"""


class RedisCounters:
    """Counters shared through Redis (redis-py); this process's LocalCounters while Redis fails."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "policy-engine:",
        timeout: float = 0.25,
        retry_seconds: float = 5.0,
        fallback: LocalCounters | None = None,
    ) -> None:
        import redis  # noqa: PLC0415 - only deployments that configure Redis load it

        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._take = self._client.register_script(_TAKE)
        self._burst = self._client.register_script(_BURST)
        self._prefix = prefix
        self._retry_seconds = retry_seconds
        self._fallback = fallback or LocalCounters()
        self._down_until = 0.0
        self._lock = threading.Lock()

    @property
    def prefix(self) -> str:
        return self._prefix

    def take(self, key: str, rate: float, burst: float, cost: float = 1.0, now: float | None = None) -> float:
        cost = min(cost, burst)
        answer = self._shared(self._take, [self._prefix + "bucket:" + key], [repr(rate), repr(burst), repr(cost)])
        if answer is None:
            return self._fallback.take(key, rate, burst, cost, now)
        return float(answer)

    def burst(self, key: str, member: str, window: float, limit: int, min_members: int = 1) -> bool:
        keys = [self._prefix + "events:" + key, self._prefix + "members:" + key]
        event = os.urandom(8).hex()
        answer = self._shared(self._burst, keys, [repr(float(window)), member, event, str(limit), str(min_members)])
        if answer is None:
            return self._fallback.burst(key, member, window, limit, min_members)
        return bool(int(answer))

    def close(self) -> None:
        self._client.close()

    def _shared(self, script: Any, keys: list[str], args: list[str]) -> Any:
        """The script's answer; None while Redis is failing (the caller answers locally)."""
        if self._down_until and time.monotonic() < self._down_until:
            return None
        try:
            answer = script(keys=keys, args=args)
        except self._errors as exc:
            with self._lock:
                first = not self._down_until
                self._down_until = time.monotonic() + self._retry_seconds
            if first:
                log.warning(
                    "shared counters unavailable (%s): rate limits and threat windows hold per process "
                    "until Redis answers again (retried every %.0fs)", exc, self._retry_seconds,
                )
            return None
        if self._down_until:
            with self._lock:
                self._down_until = 0.0
            log.warning("shared counters available again")
        return answer
