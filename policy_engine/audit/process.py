"""DecisionLogProcess: the decision log's writer in a process of its own, supervised.

Sealing an entry (redaction, encryption, the hash chain) and inserting it
cost microseconds; in the serving process that work would take the GIL from
deciding. Here the serving process only appends entries to a buffer; a
flusher thread pickles the whole buffer at once (a BatchCheck's shared
subject attributes once, not once per item) and writes it to a pipe at most
every `flush_interval` seconds, or as soon as `flush_size` pickled objects
wait (an entry each; a group whose items are PlainItems is one). A
child process (audit.writer_process) runs an ordinary DecisionLog (same spill
file, chain and exactly-once replay) and feeds it with backpressure. With
priority "idle" the child runs at idle CPU priority.

Supervision: a standby writer process waits beside the writer, spawned and
imported; the serving process keeps every entry it handed over until the
writer says it is done with it (stored in the database or the fsynced spill
file, or counted lost). When the writer process dies (a crash, kill -9), the
standby takes over at once (and a new standby is spawned); it is re-sent every entry the dead one had not finished,
skips by decision id those the dead one had stored in its last instant, and
records a crash gap for the batch the crash left in doubt (audit.position).
Meanwhile entries keep arriving in the buffer. When a writer cannot be started,
starting is retried with backoff and `available` is False (health reports
NOT_SERVING); under `on_loss: fail_closed` decisions are refused meanwhile.

The bound (`queue_size`) counts entries accepted by this process and not yet
taken by the writer's DecisionLog, so an entry is refused (counted as lost,
or AuditUnavailableError under fail_closed) when `record`/`record_many` is
called, never later. A hard crash of the serving process can lose what its
buffer and the writer's queue hold (at most about twice `queue_size` entries).
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import pickle
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policy_engine.audit.errors import AuditUnavailableError
from policy_engine.audit.handoff import dumps, pickling_cost, widen
from policy_engine.audit.protection import AttributeProtector
from policy_engine.audit.records import DecisionGroup, DecisionRecord, weight
from policy_engine.audit.writer import DecisionLogStats, Takeover, first_entries
from policy_engine.audit.writer_process import (
    _DONE,
    _DONE_SEQ,
    _FAILING,
    _LOST,
    _PENDING,
    _QUEUED,
    _READY,
    _REPLAYED,
    _SPILLED,
    _TAKEN,
    _WRITTEN,
    SLOTS,
    WriterArguments,
    writer_main,
)

__all__ = ["WRITER_PRIORITIES", "DecisionLogProcess"]

# "normal": the writer competes for the CPU like any process; "idle": it runs only on CPU time
# nothing else wants (Linux SCHED_IDLE), see writer_process._run_when_idle.
WRITER_PRIORITIES = ("idle", "normal")

log = logging.getLogger(__name__)

# How long a new writer process may take to become ready before it counts as failed to start.
_START_TIMEOUT = 30.0
_FIRST_RETRY, _MAX_RETRY = 0.25, 2.0

Unit = Sequence[DecisionRecord] | DecisionGroup


@dataclass(frozen=True)
class _Writer:
    """A writer process (a standby until it is sent its arguments), its pipe and counters."""

    process: Any
    pipe: Any
    counters: Any


class DecisionLogProcess:
    """An AuditSink whose writer runs in a child process (spawned, so no inherited threads),
    restarted when it dies."""

    def __init__(
        self,
        db_url: str,
        *,
        replica_id: str,
        spill_dir: Path,
        protector: AttributeProtector,
        queue_size: int = 10_000,
        batch_size: int = 500,
        on_loss: str = "count",
        flush_interval: float = 0.05,
        flush_size: int = 500,
        priority: str = "normal",
    ) -> None:
        if priority not in WRITER_PRIORITIES:
            raise ValueError(f"priority must be one of {WRITER_PRIORITIES}, not {priority!r}")
        self._context = multiprocessing.get_context("spawn")
        self._template = WriterArguments(
            db_url, replica_id, str(spill_dir), protector, queue_size, batch_size, on_loss, os.getpid(),
            priority, 0, None,
        )
        self._replica_id = replica_id
        self._fail_closed = on_loss == "fail_closed"
        self._capacity = queue_size
        self._flush_interval = flush_interval
        self._flush_size = flush_size
        self._lock = threading.Lock()
        self._buffer: list[Unit] = []
        self._buffered = 0  # entries
        self._buffered_cost = 0  # what they cost to pickle (see pickling_cost)
        self._accepted = 0  # entries accepted here, ever; the writer counts those it took (_TAKEN)
        self._lost_here = 0
        self._closed = False
        self._closing = threading.Event()
        # Entries handed to writers: numbered from 0 in the order accepted. Messages sent and not
        # yet done with: (first entry number, end number, units), oldest first.
        self._unacked: deque[tuple[int, int, list[Unit]]] = deque()
        self._sent = 0
        self._done = 0  # entries before this number are done with (stored, spilled or lost)
        self._done_seq = -1  # the chain position they end at (-1: no writer found its position)
        self._earlier = [0, 0, 0, 0]  # written, spilled, replayed, lost by writers that died
        self._down = False  # the last writer could not be started
        self._died = threading.Event()
        self._pending = threading.Event()  # the buffer holds something, or the writer died
        self._due = threading.Event()  # flush now: the buffer is full, or closing
        self._process: Any = None
        self._pipe: Any = None
        self._counters: Any = None
        self._standby: _Writer | None = None
        self._started = False  # the first writer became ready
        self._launch(first_entry=0, takeover=None)
        self._flusher = threading.Thread(target=self._flush_loop, name=f"decision-log-flush:{replica_id}",
                                         daemon=True)
        self._flusher.start()

    def record(self, entry: DecisionRecord) -> None:
        self._accept((entry,), 1, 1)

    def record_many(self, entries: Sequence[DecisionRecord]) -> None:
        """Accept `entries` in order (all of them, or, when they do not all fit, those that fit
        under the default policy and none under fail_closed)."""
        if entries:
            self._accept(entries if type(entries) is tuple else list(entries), len(entries), len(entries))

    def record_group(self, group: DecisionGroup) -> None:
        """Accept the decisions of one batch request (see DecisionLog.record_group)."""
        if group.items:
            self._accept(group, len(group.items), pickling_cost(group))

    @property
    def writer_pid(self) -> int | None:
        """The current writer process's id (for operators' tools: it is the process doing the I/O)."""
        return self._process.pid

    @property
    def available(self) -> bool:
        """Whether decisions are being logged: the first writer process has started, one runs
        (or is being replaced after a crash), and it can keep entries in the database or its
        spill file."""
        counters = self._counters
        if not self._started:
            self._started = bool(counters[_READY])
        return self._started and not self._down and not self._closed and not counters[_FAILING]

    def has_room(self, count: int) -> bool:
        """Whether `count` more entries would be accepted now (see AuditSink). With no writer
        that can start, or the sink closed, waiting cannot help: True, and `record` applies the
        loss policy at once."""
        if self._down or self._closed:
            return True
        waiting = self._accepted - self._counters[_TAKEN]
        return waiting <= 0 or waiting + count <= self._capacity

    def _accept(self, entries: Unit, count: int, cost: int) -> None:
        """Take `entries` (`count` decisions, `cost` as pickling_cost counts it) into the buffer."""
        with self._lock:
            if self._closed:
                self._lost_here += count
                return
            if self._fail_closed and (self._down or self._counters[_FAILING]):
                self._lost_here += count
                raise AuditUnavailableError(
                    "the decision log writer cannot be started" if self._down
                    else "the decision log can write neither to the database nor to disk"
                )
            room = self._capacity - (self._accepted - self._counters[_TAKEN])
            kept = count if room >= count else (0 if self._fail_closed else max(room, 0))
            if kept:
                self._buffer.append(entries if kept == count else first_entries(entries, kept))
                self._accepted += kept
                self._buffered += kept
                self._buffered_cost += cost if kept == count else kept
                # set() takes a lock and notifies: once per flush, not once per entry
                if self._buffered_cost >= self._flush_size and not self._due.is_set():
                    self._due.set()
                if not self._pending.is_set():
                    self._pending.set()
            if kept < count:
                self._lost_here += count - kept
                if self._fail_closed:
                    raise AuditUnavailableError("the decision log queue is full")

    # --- the flusher thread: hand entries over, replace a writer that died -------------------

    def _flush_loop(self) -> None:
        while True:
            if not self._died.is_set():
                self._pending.wait()
                if not self._died.is_set():
                    self._due.wait(self._flush_interval)
            if self._died.is_set() and not self._replace_writer():
                return
            with self._lock:
                units, self._buffer, self._buffered, self._buffered_cost = self._buffer, [], 0, 0
                closing = self._closed
                if not closing:
                    self._pending.clear()
                    self._due.clear()
            if not self._send(units):
                continue  # the writer died: replaced at the top of the loop, the units re-sent
            if closing:
                try:
                    self._pipe.send_bytes(dumps(None))
                except (OSError, ValueError):
                    self._died.set()
                    continue
                return

    def _send(self, units: list[Unit]) -> bool:
        """Hand `units` to the writer in messages of about flush_size pickled objects (one pickle
        of everything would hold the GIL for long after a burst); each is kept until the writer
        is done with it. False when the writer is gone (what was not received is re-sent)."""
        self._forget_done()
        start = 0
        while start < len(units):
            end, size, count = start, 0, 0
            while end < len(units) and size < self._flush_size:
                size += pickling_cost(units[end])
                count += weight(units[end])
                end += 1
            chunk = units[start:end]
            self._unacked.append((self._sent, self._sent + count, chunk))
            self._sent += count
            start = end
            try:
                self._pipe.send_bytes(dumps(chunk))
            except (OSError, ValueError):
                rest = units[start:]
                if rest:  # kept, to be re-sent with the rest to the next writer
                    rest_count = sum(weight(unit) for unit in rest)
                    self._unacked.append((self._sent, self._sent + rest_count, rest))
                    self._sent += rest_count
                self._died.set()
                return False
        return True

    def _forget_done(self) -> None:
        counters = self._counters
        done = counters[_DONE]
        while self._unacked and self._unacked[0][1] <= done:
            self._unacked.popleft()

    def _spawn(self) -> _Writer:
        """A standby writer process: it imports its modules, then waits for its arguments."""
        reader, pipe = self._context.Pipe(duplex=False)
        widen(pipe)
        counters = self._context.Array("q", SLOTS, lock=False)
        process = self._context.Process(
            target=writer_main,
            args=(reader, counters),
            name=f"decision-log:{self._replica_id}",
            daemon=True,
        )
        process.start()
        reader.close()
        return _Writer(process, pipe, counters)

    def _launch(self, first_entry: int, takeover: Takeover | None) -> None:
        """Make the standby (or, without a live one, a new process) the writer, from entry
        number `first_entry` on, and spawn the next standby."""
        writer, self._standby = self._standby, None
        if writer is None or not writer.process.is_alive():
            if writer is not None:
                writer.pipe.close()
            writer = self._spawn()
        counters = writer.counters
        counters[_TAKEN] = counters[_DONE] = first_entry
        counters[_DONE_SEQ] = -1
        arguments = WriterArguments(**{**self._template.__dict__, "first_entry": first_entry, "takeover": takeover})
        self._process, self._pipe, self._counters = writer.process, writer.pipe, counters
        self._died.clear()
        threading.Thread(target=self._watch, args=(writer.process,), name=f"decision-log-watch:{self._replica_id}",
                         daemon=True).start()
        try:
            writer.pipe.send_bytes(pickle.dumps(arguments, protocol=pickle.HIGHEST_PROTOCOL))
        except (OSError, ValueError):
            self._died.set()  # it died as a standby: _wait_ready sees it
        if not self._closed:
            self._standby = self._spawn()

    def _watch(self, process: Any) -> None:
        multiprocessing.connection.wait([process.sentinel])
        with self._lock:
            if process is self._process and not self._closed:
                self._died.set()
                self._pending.set()
                self._due.set()

    def _replace_writer(self) -> bool:
        """Start a writer in place of the one that died and re-send it what the dead one had not
        finished; retried with backoff while starting fails. False once closing while no
        writer can start (what is not done with is then lost)."""
        delay = _FIRST_RETRY
        while True:
            self._bury()
            units = self._not_done()
            resent = sum(weight(unit) for unit in units)
            takeover = Takeover(self._done_seq, resent)
            self._launch(first_entry=self._done, takeover=takeover)
            if self._wait_ready():
                self._down = False
                log.warning("decision log: writer process %s took over (%d entries re-sent)",
                            self._process.pid, resent)
                self._unacked.clear()
                self._sent = self._done
                if self._send(units):
                    return True
                continue  # died again at once
            self._down = True
            if self._closed:
                with self._lock:
                    self._lost_here += self._accepted - self._done
                log.error("decision log: no writer process could be started; %d entries are lost",
                          self._accepted - self._done)
                return False
            log.error("decision log: cannot start a writer process; retrying in %.2fs", delay)
            self._closing.wait(delay)
            delay = min(delay * 2, _MAX_RETRY)

    def _bury(self) -> None:
        """Reap the dead writer and take over its counters."""
        dead, counters = self._process, self._counters
        dead.join(1.0)
        if dead.is_alive():  # its pipe broke but it lives on: it must not write alongside the next
            dead.kill()
            dead.join()
        self._pipe.close()
        if dead.exitcode not in (0, None) and counters[_READY]:
            log.error("decision log: writer process %s died (exit code %s); starting another",
                      dead.pid, dead.exitcode)
        if counters[_DONE] > self._done:
            self._done = counters[_DONE]
            if counters[_DONE_SEQ] >= 0:
                self._done_seq = counters[_DONE_SEQ]
        for index, slot in enumerate((_WRITTEN, _SPILLED, _REPLAYED, _LOST)):
            self._earlier[index] += counters[slot]
        counters[_WRITTEN] = counters[_SPILLED] = counters[_REPLAYED] = counters[_LOST] = 0

    def _not_done(self) -> list[Unit]:
        """The units handed over whose entries are not done with, the first one trimmed to its
        entries from the done position on (the writer is done with entries in order)."""
        units: list[Unit] = []
        for first, _end, chunk in self._unacked:
            for unit in chunk:
                count = weight(unit)
                if first + count <= self._done:
                    first += count
                    continue
                if first < self._done:
                    unit = _last_entries(unit, first + count - self._done)
                units.append(unit)
                first += count
        return units

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + _START_TIMEOUT
        while not self._counters[_READY]:
            if self._process.exitcode is not None or time.monotonic() > deadline:
                if self._process.is_alive():
                    self._process.kill()
                self._process.join()
                return False
            time.sleep(0.01)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Flush the buffer, send the end marker, and wait for the child to drain to the database
        or spill file."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._pending.set()
            self._due.set()
        self._closing.set()
        deadline = time.monotonic() + timeout
        self._flusher.join(timeout / 2)
        if self._flusher.is_alive():
            log.error("decision log: could not hand the last entries to the writer process")
        standby, self._standby = self._standby, None
        if standby is not None:
            standby.pipe.close()  # a standby whose pipe closes exits
            standby.process.join(5)
            if standby.process.is_alive():
                standby.process.kill()
                standby.process.join(5)
        self._process.join(max(deadline - time.monotonic(), 0.1))
        if self._process.is_alive():
            # It ignores SIGTERM (so a terminal's signals cannot cut its drain short): kill it.
            log.error("decision log writer did not stop within %.1fs; entries it still holds are lost",
                      timeout)
            self._process.kill()
            self._process.join(5)
        self._pipe.close()

    @property
    def stats(self) -> DecisionLogStats:
        counters = self._counters
        written, spilled, replayed, lost = self._earlier
        return DecisionLogStats(
            queued=max(self._accepted - counters[_TAKEN], 0) + counters[_QUEUED],
            written=written + counters[_WRITTEN],
            spilled=spilled + counters[_SPILLED],
            replayed=replayed + counters[_REPLAYED],
            lost=lost + counters[_LOST] + self._lost_here,
            spill_pending=bool(counters[_PENDING]),
        )


def _last_entries(unit: Unit, count: int) -> Unit:
    """The last `count` entries of `unit` (of a group: its last `count` items)."""
    if type(unit) is DecisionGroup:
        return unit._replace(items=unit.items[len(unit.items) - count :])
    return unit[len(unit) - count :]
