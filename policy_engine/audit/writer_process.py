"""The decision log's writer process: an ordinary DecisionLog fed from a pipe (audit.process).

It tells the serving process how far it got through shared counters (`Counters`): entries taken
into its queue, entries done with (stored, spilled, or lost) and the chain position they end at,
the DecisionLog's own statistics, and whether it is ready. Entry numbers count every entry the
serving process ever handed to a writer, so a writer that takes over from a dead one continues
the same numbering from the first entry it is re-sent.

A writer process starts as a standby: spawned and with its modules imported (most of its start
time), it waits for its arguments on the pipe, so that a dead writer is replaced in
milliseconds rather than in the second or more a fresh interpreter takes. A standby whose pipe
closes (the serving process stopped or died) exits.
"""

from __future__ import annotations

import logging
import os
import pickle
import queue
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policy_engine.audit.handoff import loads
from policy_engine.audit.protection import AttributeProtector
from policy_engine.audit.records import DecisionGroup, weight
from policy_engine.audit.writer import DecisionLog, Takeover
from policy_engine.store import open_database

__all__ = ["SLOTS", "WriterArguments", "writer_main"]

log = logging.getLogger(__name__)

# Slots of the shared counters array (one array per writer process).
(_WRITTEN, _SPILLED, _REPLAYED, _LOST, _PENDING, _TAKEN, _QUEUED, _FAILING, _DONE, _DONE_SEQ,
 _READY, _STANDING_BY) = range(12)
SLOTS = 12


@dataclass(frozen=True)
class WriterArguments:
    """What a writer process is started with (pickled to the spawned child)."""

    db_url: str
    replica_id: str
    spill_dir: str
    protector: AttributeProtector
    queue_size: int
    batch_size: int
    on_loss: str
    parent_pid: int
    priority: str
    first_entry: int  # the number of entries handed to earlier writers and done with
    takeover: Takeover | None


def _run_when_idle() -> None:
    """Sealing a group of decisions takes the writer a fraction of a millisecond of CPU; at
    normal priority that lands in the middle of the next requests on a busy core and shows in
    their tail latency. SCHED_IDLE lets every other task go first. That is only safe when the
    serving process has the host to itself: when the queue fills, its requests wait and leave
    the CPU to the writer, but other busy processes (other workers, other services) do not,
    and the writer can then fall behind until the wait runs out and entries are lost. An
    unprivileged process cannot leave SCHED_IDLE again, so this is not switched on demand."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError) as exc:  # not Linux, or refused: normal priority then
        log.info("decision log writer: cannot run at idle priority (%s)", exc)


def writer_main(inbox: Any, counters: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    counters[_STANDING_BY] = 1
    try:
        arguments: WriterArguments = pickle.loads(inbox.recv_bytes())  # a standby until then
    except (EOFError, OSError):
        return
    # The parent decides when to stop (the end marker); a terminal's Ctrl-C or a SIGTERM to the
    # process group must not kill the writer before it has drained. (A standby holds nothing:
    # SIGTERM, as multiprocessing sends its daemons at exit, ends it.)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if arguments.priority == "idle":
        _run_when_idle()

    base, parent_pid = arguments.first_entry, arguments.parent_pid
    holder: list[DecisionLog] = []

    def progress(handled: int, seq: int) -> None:
        # done first, then its position: a reader between the two sees an older position,
        # which only makes a successor look further back for entries stored already
        counters[_DONE] = base + handled
        counters[_DONE_SEQ] = seq
        if holder:
            _publish(holder[0], counters)

    sink = DecisionLog(
        open_database(arguments.db_url, client_timeouts=True),
        replica_id=arguments.replica_id,
        spill_dir=Path(arguments.spill_dir),
        protector=arguments.protector,
        queue_size=arguments.queue_size,
        batch_size=arguments.batch_size,
        on_loss=arguments.on_loss,
        takeover=arguments.takeover,
        on_progress=progress,
    )
    holder.append(sink)
    counters[_READY] = 1
    published = 0.0
    taken = base
    while True:
        entries: Any = ...
        if inbox.poll(0.5):
            try:
                entries = loads(inbox.recv_bytes())
            except (EOFError, OSError):
                break  # the serving process is gone without saying goodbye: drain what we have
        if entries is None:
            break
        if entries is not ...:
            handed = 0
            for segment in entries:
                if not _hand_over(sink, segment, parent_pid):
                    break
                handed += 1
                taken += weight(segment)
                counters[_TAKEN] = taken
            if handed < len(entries):
                # the serving process is gone while the writer was blocked: drain what we have
                sink._lose(sum(weight(s) for s in entries[handed + 1 :]), "the serving process is gone",  # noqa: SLF001
                           quiet=True)
                break
        now = time.monotonic()
        if now - published > 0.25 or entries is not ...:
            _publish(sink, counters)
            published = now
        if entries is ... and os.getppid() != parent_pid:
            break
    sink.close(timeout=30.0)
    _publish(sink, counters)


def _hand_over(sink: DecisionLog, entries: list[tuple[Any, ...]] | DecisionGroup, parent_pid: int) -> bool:
    """Queue `entries`, waiting for room while the serving process lives; False (the entries
    counted lost) once it is gone, so that a writer stuck behind the database never outlives it."""
    while True:
        try:
            sink.put_many(entries, timeout=0.5)
            return True
        except queue.Full:
            if os.getppid() != parent_pid:
                log.error("decision log: the serving process is gone; %d entries not queued are lost",
                          weight(entries))
                sink._lose(weight(entries), "the serving process is gone", quiet=True)  # noqa: SLF001
                return False


def _publish(sink: DecisionLog, counters: Any) -> None:
    stats = sink.stats
    counters[_WRITTEN] = stats.written
    counters[_SPILLED] = stats.spilled
    counters[_REPLAYED] = stats.replayed
    counters[_LOST] = stats.lost
    counters[_PENDING] = int(bool(stats.spill_pending))
    counters[_QUEUED] = stats.queued
    counters[_FAILING] = int(sink.failing)
