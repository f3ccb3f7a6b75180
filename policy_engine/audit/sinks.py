"""The audit seam: what the service calls per decision, and the sink used when audit is off."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from policy_engine.audit.records import DecisionGroup, DecisionRecord

__all__ = ["AuditSink", "NullSink", "wait_for_room"]


@runtime_checkable
class AuditSink(Protocol):
    """Receives every decision.

    `record`, `record_many` and `record_group` are cheap and never block on I/O: they run on
    the gRPC event loop. `record_group` hands over the decisions of one BatchCheck or
    FilterAllowed as one record (what a batch should call: the shared parts once, one row in
    the log); `record_many` several entries at once, in order. All raise AuditUnavailableError
    only under the fail-closed policy, when the entries cannot be kept (then none of the
    call's entries is kept). `has_room(count)` says whether `count` more entries would be
    queued now (for more than the whole queue holds: whether the queue is empty). `close`
    drains everything accepted so far to durable storage (clean shutdown).
    """

    def has_room(self, count: int) -> bool: ...

    def record(self, entry: DecisionRecord) -> None: ...

    def record_many(self, entries: Sequence[DecisionRecord]) -> None: ...

    def record_group(self, group: DecisionGroup) -> None: ...

    def close(self, timeout: float = 10.0) -> None: ...


class NullSink:
    """Keeps nothing: the sink when the decision log is off (and in tests of other parts)."""

    def has_room(self, count: int) -> bool:
        del count
        return True

    def record(self, entry: DecisionRecord) -> None:
        del entry

    def record_many(self, entries: Sequence[DecisionRecord]) -> None:
        del entries

    def record_group(self, group: DecisionGroup) -> None:
        del group

    def close(self, timeout: float = 10.0) -> None:
        del timeout


# How often a request waiting for queue room looks again: the writer frees room a batch at a time.
_ROOM_POLL_SECONDS = 0.002


async def wait_for_room(sink: AuditSink, count: int, limit: float) -> bool:
    """Backpressure: wait until `sink` has room for `count` entries, at most `limit` seconds,
    without blocking the event loop. False when the time ran out first (the sink's loss policy
    then decides what happens to the entries)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not sink.has_room(count):
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(_ROOM_POLL_SECONDS)
    return True
