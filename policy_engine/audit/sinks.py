"""The audit seam: what the service calls per decision, and the sink used when audit is off."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from policy_engine.audit.records import DecisionGroup, DecisionRecord

__all__ = ["AuditSink", "NullSink", "RoomLine"]


@runtime_checkable
class AuditSink(Protocol):
    """Receives every decision.

    `record`, `record_many` and `record_group` are cheap and never block on I/O: they run on
    the gRPC event loop. `record_group` hands over the decisions of one BatchCheck or
    FilterAllowed as one record (what a batch should call: the shared parts once, one row in
    the log); `record_many` several entries at once, in order. All raise AuditUnavailableError
    only under the fail-closed policy, when the entries cannot be kept (then none of the
    call's entries is kept). `has_room(count)` says whether `count` more entries would be
    queued now (for more than the whole queue holds: whether the queue is empty). `available`
    says whether entries are being kept now (False: the writer cannot run, or neither the
    database nor the spill file takes entries; health then reports NOT_SERVING). `close`
    drains everything accepted so far to durable storage (clean shutdown).
    """

    @property
    def available(self) -> bool: ...

    def has_room(self, count: int) -> bool: ...

    def record(self, entry: DecisionRecord) -> None: ...

    def record_many(self, entries: Sequence[DecisionRecord]) -> None: ...

    def record_group(self, group: DecisionGroup) -> None: ...

    def close(self, timeout: float = 10.0) -> None: ...


class NullSink:
    """Keeps nothing: the sink when the decision log is off (and in tests of other parts)."""

    @property
    def available(self) -> bool:
        return True

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


# How often the request at the head of the line looks again: the writer frees room a batch at a time.
_ROOM_POLL_SECONDS = 0.002


class RoomLine:
    """Backpressure in arrival order: requests waiting for room in `sink`'s queue form a line.

    Only the request at the head polls for room; the others wait their turn, and a newcomer
    joins the line while anyone waits even if its own entries would fit. When every waiter
    polled on its own, whoever looked first after the writer freed some room took it, so a
    large batch could wait past its limit (and lose its entries) while smaller requests, or
    its equals, kept taking the room it needed.
    """

    def __init__(self, sink: AuditSink) -> None:
        self._sink = sink
        self._line: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def has_room(self, count: int) -> bool:
        """Whether `count` entries may go ahead now: room in the queue, and nobody waiting."""
        line = self._line
        return (line is None or not line.locked()) and self._sink.has_room(count)

    async def wait(self, count: int, limit: float) -> bool:
        """Wait in line until the sink has room for `count` entries, at most `limit` seconds in
        all, without blocking the event loop. False when the time ran out first (the sink's
        loss policy then decides what happens to the entries)."""
        loop = asyncio.get_running_loop()
        if self._line is None or self._loop is not loop:  # an asyncio.Lock serves one loop
            self._line, self._loop = asyncio.Lock(), loop
        try:
            async with asyncio.timeout(limit), self._line:
                while not self._sink.has_room(count):
                    await asyncio.sleep(_ROOM_POLL_SECONDS)
        except TimeoutError:
            return False
        return True
