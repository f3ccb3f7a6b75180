"""DecisionLogProcess: the decision log's writer in a process of its own.

Sealing an entry (redaction, encryption, the hash chain) and inserting it
cost microseconds; in the serving process that work would take the GIL from
deciding. Here the serving process only appends entries to a buffer; a
flusher thread pickles the whole buffer at once (a BatchCheck's shared
subject attributes once, not once per item) and writes it to a pipe at most
every `flush_interval` seconds, or as soon as `flush_size` pickled objects
wait (an entry each; a group whose items are PlainItems is one). A
child process runs an ordinary DecisionLog (same spill file, chain and
exactly-once replay) and feeds it with backpressure. With priority "idle" the
child runs at idle CPU priority (see `_run_when_idle`).

The bound (`queue_size`) counts entries accepted by this process and not yet
taken by the writer's DecisionLog, so an entry is refused (counted as lost,
or AuditUnavailableError under fail_closed) when `record`/`record_many` is
called, never later. Durability is the DecisionLog's, plus this buffer and
pipe: a hard crash of the serving process can lose what sits in them (at most
`queue_size` entries).
"""

from __future__ import annotations

import fcntl
import io
import logging
import multiprocessing
import os
import pickle
import queue
import signal
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from policy_engine.audit.errors import AuditUnavailableError
from policy_engine.audit.protection import AttributeProtector
from policy_engine.audit.records import DecisionGroup, DecisionRecord, GroupItem, PlainItems, weight
from policy_engine.audit.writer import DecisionLog, DecisionLogStats, first_entries

__all__ = ["WRITER_PRIORITIES", "DecisionLogProcess"]

# "normal": the writer competes for the CPU like any process; "idle": it runs only on CPU time
# nothing else wants (Linux SCHED_IDLE), see _run_when_idle.
WRITER_PRIORITIES = ("idle", "normal")

log = logging.getLogger(__name__)

_WRITTEN, _SPILLED, _REPLAYED, _LOST, _PENDING, _TAKEN, _QUEUED, _FAILING = range(8)


class DecisionLogProcess:
    """An AuditSink whose writer runs in a child process (spawned, so no inherited threads)."""

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
        context = multiprocessing.get_context("spawn")
        reader, self._pipe = context.Pipe(duplex=False)
        _widen(self._pipe)
        self._counters: Any = context.Array("q", 8, lock=False)
        self._fail_closed = on_loss == "fail_closed"
        self._capacity = queue_size
        self._flush_interval = flush_interval
        self._flush_size = flush_size
        self._lock = threading.Lock()
        self._buffer: list[Sequence[DecisionRecord] | DecisionGroup] = []
        self._buffered = 0  # entries
        self._buffered_cost = 0  # what they cost to pickle (see _pickling_cost)
        self._accepted = 0  # entries accepted here, ever; the child counts those it took (_TAKEN)
        self._lost_here = 0
        self._closed = False
        self._broken = False  # the writer process is gone
        self._pending = threading.Event()  # the buffer holds something
        self._due = threading.Event()  # flush now: the buffer is full, or closing
        self._process = context.Process(
            target=_writer_main,
            args=(db_url, replica_id, str(spill_dir), protector, queue_size, batch_size, on_loss,
                  reader, self._counters, os.getpid(), priority),
            name=f"decision-log:{replica_id}",
            daemon=True,
        )
        self._process.start()
        reader.close()
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
            self._accept(group, len(group.items), _pickling_cost(group))

    @property
    def writer_pid(self) -> int | None:
        """The writer process's id (for operators' tools: it is the process doing the I/O)."""
        return self._process.pid

    def has_room(self, count: int) -> bool:
        """Whether `count` more entries would be accepted now (see AuditSink). With the writer
        process gone or the sink closed, waiting cannot help: True, and `record` applies the
        loss policy at once."""
        if self._broken or self._closed:
            return True
        waiting = self._accepted - self._counters[_TAKEN]
        return waiting <= 0 or waiting + count <= self._capacity

    def _accept(self, entries: Sequence[DecisionRecord] | DecisionGroup, count: int, cost: int) -> None:
        """Take `entries` (`count` decisions, `cost` as _pickling_cost counts it) into the buffer."""
        with self._lock:
            if self._broken:
                self._lost_here += count
                if self._fail_closed:
                    raise AuditUnavailableError("the decision log writer process is gone")
                return
            if self._closed:
                self._lost_here += count
                return
            if self._fail_closed and self._counters[_FAILING]:
                self._lost_here += count
                raise AuditUnavailableError("the decision log can write neither to the database nor to disk")
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

    def _flush_loop(self) -> None:
        pipe = self._pipe
        try:
            while True:
                self._pending.wait()
                self._due.wait(self._flush_interval)
                with self._lock:
                    groups, self._buffer, self._buffered, self._buffered_cost = self._buffer, [], 0, 0
                    closing = self._closed
                    self._pending.clear()
                    if not closing:
                        self._due.clear()
                # In messages of about flush_size pickled objects: one pickle of everything would
                # hold the GIL for long after a burst, and a pickle's cost per entry grows with it.
                start = 0
                while start < len(groups):
                    end, size = start, 0
                    while end < len(groups) and size < self._flush_size:
                        size += _pickling_cost(groups[end])
                        end += 1
                    try:
                        pipe.send_bytes(_dumps(groups[start:end]))
                    except (OSError, ValueError):
                        with self._lock:
                            self._lost_here += sum(weight(group) for group in groups[start:])
                        raise
                    start = end
                if closing:
                    pipe.send_bytes(_dumps(None))
                    return
        except (OSError, ValueError) as exc:
            log.error("decision log: the writer process is gone (%s); entries not handed over are lost", exc)
            with self._lock:
                self._broken = self._closed = True
                self._lost_here += self._buffered
                self._buffer, self._buffered, self._buffered_cost = [], 0, 0

    def close(self, timeout: float = 10.0) -> None:
        """Flush the buffer, send the end marker, and wait for the child to drain to the database
        or spill file."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._pending.set()
            self._due.set()
        deadline = time.monotonic() + timeout
        self._flusher.join(timeout / 2)
        if self._flusher.is_alive():
            log.error("decision log: could not hand the last entries to the writer process")
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
        return DecisionLogStats(
            queued=max(self._accepted - counters[_TAKEN], 0) + counters[_QUEUED],
            written=counters[_WRITTEN],
            spilled=counters[_SPILLED],
            replayed=counters[_REPLAYED],
            lost=counters[_LOST] + self._lost_here,
            spill_pending=bool(counters[_PENDING]),
        )


class _Pickler(pickle.Pickler):
    # Records cross as plain tuples (the writer reads them by position), group items too, and
    # the engine's read-only attribute mappings as dicts. The pickler's memo keeps an object
    # shared by many entries (a subject's attributes) shared, and pickled once.
    dispatch_table = {
        DecisionRecord: lambda entry: (tuple, (tuple(entry),)),
        GroupItem: lambda item: (tuple, (tuple(item),)),
        MappingProxyType: lambda mapping: (dict, (dict(mapping),)),
    }


def _pickling_cost(unit: Sequence[DecisionRecord] | DecisionGroup) -> int:
    """What `unit` costs `_dumps`, in entries: a group of PlainItems crosses as one text, so a
    FilterAllowed's hundred candidates cost about what one Check's entry does."""
    if type(unit) is DecisionGroup and type(unit.items) is PlainItems:
        return 1
    return weight(unit)


def _dumps(chunks: Sequence[Sequence[DecisionRecord] | DecisionGroup] | None) -> bytes:
    """One message: the chunks' records and groups, in order. Consecutive records go as columns
    (entries that share values, such as one subject, then cost the pickler's memo a reference
    each, and no entry needs a reducer call); `_loads` gives them back as plain tuples, and each
    group as a DecisionGroup. None is the end marker."""
    buffer = io.BytesIO()
    if chunks is None:
        _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(None)
        return buffer.getvalue()
    segments: list[Any] = []
    records: list[DecisionRecord] = []
    for chunk in chunks:
        if type(chunk) is DecisionGroup:
            if records:
                segments.append(tuple(zip(*records)))
                records = []
            segments.append(chunk)
        else:
            records.extend(chunk)
    if records:
        segments.append(tuple(zip(*records)))
    try:
        _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(segments)
    except Exception:  # noqa: BLE001 - an attribute value that does not pickle
        buffer = io.BytesIO()
        safe = [
            _picklable_group(segment) if type(segment) is DecisionGroup
            else tuple(zip(*[_picklable(entry) for entry in zip(*segment)]))
            for segment in segments
        ]
        _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(safe)
    return buffer.getvalue()


def _loads(message: bytes) -> list[list[tuple[Any, ...]] | DecisionGroup] | None:
    """The records (as lists of tuples) and groups of a message, in order; None: the end."""
    segments = pickle.loads(message)
    if segments is None:
        return None
    return [segment if type(segment) is DecisionGroup else list(zip(*segment)) for segment in segments]


def _picklable(entry: DecisionRecord) -> Any:
    """`entry`, or, when its attributes do not pickle, `entry` without them (as the writer
    would store an entry whose attributes it cannot encode)."""
    try:
        _Pickler(io.BytesIO(), protocol=pickle.HIGHEST_PROTOCOL).dump(entry)
    except Exception as exc:  # noqa: BLE001
        log.warning("decision %s: attributes not recordable (%s)", entry[0], exc)
        return (*tuple(entry)[:15], {})
    return entry


def _picklable_group(group: DecisionGroup) -> DecisionGroup:
    """`group`, without the attributes (shared, or an item's own) that do not pickle."""
    try:
        _Pickler(io.BytesIO(), protocol=pickle.HIGHEST_PROTOCOL).dump(group.attributes)
    except Exception as exc:  # noqa: BLE001
        log.warning("decisions %s*: shared attributes not recordable (%s)", group.id_prefix, exc)
        group = group._replace(attributes={})
    items = []
    for item in group.items:
        try:
            _Pickler(io.BytesIO(), protocol=pickle.HIGHEST_PROTOCOL).dump(item)
        except Exception as exc:  # noqa: BLE001
            log.warning("decision %s: attributes not recordable (%s)", group.id_prefix + item[0], exc)
            item = (*tuple(item)[:7], {})
        items.append(item)
    return group._replace(items=items)


def _widen(connection: Any) -> None:
    """Give the pipe a 1 MiB buffer (Linux; the default is 64 KiB) where the system allows it: a
    flush of twenty FilterAllowed groups is about 250 KB, which a 64 KiB pipe takes in four
    writes, each waiting for the writer process to wake up and read."""
    size = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux only
    if size is None:
        return
    try:
        fcntl.fcntl(connection.fileno(), size, _PIPE_BYTES)
    except OSError as exc:  # above /proc/sys/fs/pipe-max-size: the default buffer then
        log.debug("decision log: pipe buffer left at its default (%s)", exc)


_PIPE_BYTES = 1 << 20


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


def _writer_main(
    db_url: str,
    replica_id: str,
    spill_dir: str,
    protector: AttributeProtector,
    queue_size: int,
    batch_size: int,
    on_loss: str,
    inbox: Any,
    counters: Any,
    parent_pid: int,
    priority: str,
) -> None:
    # The parent decides when to stop (the end marker); a terminal's Ctrl-C or a SIGTERM to the
    # process group must not kill the writer before it has drained.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if priority == "idle":
        _run_when_idle()
    from policy_engine.store import open_database

    sink = DecisionLog(
        open_database(db_url),
        replica_id=replica_id,
        spill_dir=Path(spill_dir),
        protector=protector,
        queue_size=queue_size,
        batch_size=batch_size,
        on_loss=on_loss,
    )
    published = 0.0
    taken = 0
    while True:
        entries: Any = ...
        if inbox.poll(0.5):
            try:
                entries = _loads(inbox.recv_bytes())
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
