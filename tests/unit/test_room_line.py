"""RoomLine: requests waiting for decision log room go in the order they came."""

from __future__ import annotations

import asyncio

from policy_engine.audit import RoomLine


class DrainingQueue:
    """A bounded queue with the sinks' room rule, drained one entry per `drain()`: what a
    decision log's writer looks like to the requests waiting on it."""

    def __init__(self, capacity: int, queued: int) -> None:
        self.capacity = capacity
        self.queued = queued

    def has_room(self, count: int) -> bool:
        return self.queued == 0 or self.queued + count <= self.capacity

    def take(self, count: int) -> None:
        self.queued += count

    def drain(self) -> None:
        self.queued = max(self.queued - 1, 0)


async def _admit(line: RoomLine, queue: DrainingQueue, name: str, count: int, limit: float,
                 admitted: list[str]) -> bool:
    if line.has_room(count):
        got_room = True
    else:
        got_room = await line.wait(count, limit)
    if got_room:
        queue.take(count)
        admitted.append(name)
    return got_room


async def _drain_forever(queue: DrainingQueue) -> None:
    while True:
        await asyncio.sleep(0.005)
        queue.drain()


def test_a_large_request_is_not_overtaken_by_smaller_ones_that_came_later() -> None:
    """A 10-entry batch waiting for an empty queue goes before the single entries that arrive
    after it, although room for one entry frees up again and again meanwhile."""

    async def scenario() -> list[str]:
        queue = DrainingQueue(capacity=10, queued=10)
        line = RoomLine(queue)
        admitted: list[str] = []
        drainer = asyncio.create_task(_drain_forever(queue))
        batch = asyncio.create_task(_admit(line, queue, "batch", 10, 5.0, admitted))
        await asyncio.sleep(0.001)
        singles = []
        for index in range(5):
            singles.append(asyncio.create_task(_admit(line, queue, f"single-{index}", 1, 5.0, admitted)))
            await asyncio.sleep(0.001)
        assert all(await asyncio.gather(batch, *singles))
        drainer.cancel()
        return admitted

    assert asyncio.run(scenario()) == ["batch", "single-0", "single-1", "single-2", "single-3", "single-4"]


def test_a_request_goes_ahead_at_once_when_there_is_room_and_nobody_waits() -> None:
    queue = DrainingQueue(capacity=10, queued=3)
    line = RoomLine(queue)
    assert line.has_room(7)
    assert not line.has_room(8)


def test_a_newcomer_joins_the_line_while_someone_waits_even_if_its_entries_fit() -> None:
    async def scenario() -> tuple[bool, bool]:
        queue = DrainingQueue(capacity=10, queued=5)
        line = RoomLine(queue)
        waiting = asyncio.create_task(line.wait(10, 0.2))
        await asyncio.sleep(0.01)
        newcomer_may_go = line.has_room(1)
        return newcomer_may_go, await waiting

    newcomer_may_go, head_got_room = asyncio.run(scenario())
    assert not newcomer_may_go
    assert head_got_room is False  # nothing drained: the limit ran out


def test_when_the_limit_runs_out_the_next_in_line_still_gets_its_turn() -> None:
    """A waiter whose time runs out leaves the line; the one behind it gets room once there is."""

    async def scenario() -> tuple[bool, bool]:
        queue = DrainingQueue(capacity=10, queued=10)
        line = RoomLine(queue)
        impatient = asyncio.create_task(line.wait(10, 0.05))
        await asyncio.sleep(0.001)
        patient = asyncio.create_task(line.wait(1, 5.0))
        first = await impatient
        queue.drain()
        return first, await patient

    assert asyncio.run(scenario()) == (False, True)
