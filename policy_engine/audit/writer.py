"""DecisionLog: the durable audit sink. A bounded queue in front, one writer thread behind.

`record()` only puts the entry on the queue. The writer thread takes entries in batches,
redacts, encrypts and hashes their attributes, gives each the replica's next sequence number and
the chained hash, then inserts the batch into the database in one transaction. When that fails
(database down, slow past the statement timeout) the batch is appended to the spill file and
fsynced instead; while the spill file holds rows, new batches go behind them in the file, and
the writer replays the file into the database in chunks (insert-if-absent) with backoff until it
is empty. The spill file is emptied only after its rows are committed.

Every database operation of the writer has a client-side deadline (`write_deadline`,
store.deadlines): a database that hangs (connections open, nothing answered) is treated as down,
and batches spill, instead of waiting in memory until the queue overflows.

Where the chain continues after a restart (audit.position): the highest of the replica's last
row or purge checkpoint in the database, the last row of an unreplayed spill file, and the
position file (the position of the last batch sent to the database, written before each insert,
not fsynced); a batch that a crash left in doubt is never given new numbers, and is recorded as a
crash gap when it is not found stored. When the database is unreachable at start and there is no
spill or position file, the writer waits for the database before taking entries, so entries stay
queued (and the queue may fill).

A writer that takes over from one that died (`takeover`, audit.process) is re-sent what the dead
one held unacknowledged: entries that it had stored already (in the database or the spill file,
after the acknowledged position) are recognised by decision id and skipped, so none is stored twice.
"""

from __future__ import annotations

import logging
import math
import queue
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from policy_engine.audit.errors import AuditUnavailableError
from policy_engine.audit.protection import AttributeProtector
from policy_engine.audit.records import (
    DecisionGroup,
    DecisionRecord,
    GroupItem,
    PlainItems,
    stored_items_json,
    weight,
)
from policy_engine.audit.position import PositionFile, chain_start
from policy_engine.audit.spill import SpillFile
from policy_engine.store.decision_log import (
    ROW_COLUMNS,
    DecisionLogRepository,
    ReplicaPosition,
    canonical_time,
    chain_hash,
    gap_row,
    row_from_mapping,
    row_mapping,
)

__all__ = ["LOSS_POLICIES", "DecisionLog", "DecisionLogStats", "Takeover", "first_entries"]

log = logging.getLogger(__name__)

# "count": keep deciding and count entries that could not be kept; "fail_closed": refuse.
LOSS_POLICIES = ("count", "fail_closed")

_NUL = "\x00"


@dataclass(frozen=True)
class DecisionLogStats:
    """Counters since start. queued: entries waiting in memory now; written: inserted directly;
    spilled: appended to the spill file; replayed: inserted from the spill file; lost: entries
    not kept (queue full, closed, or database and spill file both failing)."""

    queued: int
    written: int
    spilled: int
    replayed: int
    lost: int
    spill_pending: bool


@dataclass(frozen=True)
class Takeover:
    """This writer replaces one that died: the first `resent` decisions it is given were handed
    to the dead writer, which acknowledged every decision it stored up to chain seq `after_seq`."""

    after_seq: int
    resent: int


class DecisionLog:
    """The real AuditSink: bounded queue, background batching writer, spill file, replay."""

    def __init__(
        self,
        engine: Engine,
        *,
        replica_id: str,
        spill_dir: Path,
        protector: AttributeProtector,
        queue_size: int = 10_000,
        batch_size: int = 500,
        flush_interval: float = 0.25,
        on_loss: str = "count",
        statement_timeout: float = 5.0,
        write_deadline: float = 3.0,
        retry_interval: float = 0.25,
        max_retry_interval: float = 5.0,
        takeover: Takeover | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> None:
        """`write_deadline`: seconds a database operation may take before it counts as failed
        (a batch is then spilled); `engine` should be the writer's own
        (its connections are cut when the deadline passes). `on_progress(handled, seq)` is
        called from the writer thread each time decisions are done with, in the order queued:
        `handled` decisions so far (stored, spilled, skipped as already stored, or lost), the
        chain ending at `seq`."""
        if on_loss not in LOSS_POLICIES:
            raise ValueError(f"on_loss must be one of {LOSS_POLICIES}, not {on_loss!r}")
        if not replica_id or len(replica_id) > 128:
            raise ValueError("replica_id must have 1 to 128 characters")
        self.replica_id = replica_id
        self._repository = DecisionLogRepository(engine, deadline=write_deadline)
        self._protector = protector
        # Groups of entries (one per record/record_many call), `_queued` entries in all: a
        # BatchCheck's entries are taken as one item, and the bound counts entries.
        self._inbox: deque[Sequence[DecisionRecord]] = deque()
        self._queued = 0
        self._queued_rows = 0  # what the queued entries will be in the table (a group is one row)
        self._capacity = queue_size
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)  # the writer waits for entries
        self._room = threading.Condition(self._lock)  # put_many waits for room
        self._writer_waiting = False
        self._gathering = False  # while gathering, arrivals wake the writer only for a full batch
        self._putters = 0
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._kept_at = 0.0  # when the last batch was written (see _gather)
        self._fail_closed = on_loss == "fail_closed"
        self._timeout_ms = int(statement_timeout * 1000)
        self._min_retry = retry_interval
        self._max_retry = max_retry_interval
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", replica_id)
        spill_dir = Path(spill_dir)
        self._spill = SpillFile(spill_dir / f"{name}.spill")
        self._positions = PositionFile(spill_dir / f"{name}.position")
        self._position: ReplicaPosition | None = None
        self._takeover = takeover
        self._resent_left = takeover.resent if takeover is not None else 0
        self._already_stored: set[str] = set()
        self._handled = 0
        self._on_progress = on_progress
        self._counts_lock = threading.Lock()
        self._written = self._spilled = self._replayed = self._lost = 0
        self._db_up = True
        self._retry_at = 0.0
        self._backoff = retry_interval
        self._failing = False  # the last batch could be kept neither in the database nor on disk
        self._closed = False
        self._stop = threading.Event()
        self._deadline = math.inf
        self._thread = threading.Thread(target=self._run, name=f"decision-log:{replica_id}", daemon=True)
        self._thread.start()

    # --- the sink ---------------------------------------------------------------------------

    def record(self, entry: DecisionRecord) -> None:
        """Queue `entry` (O(1), no I/O). Counts it as lost when it cannot be queued, or raises
        AuditUnavailableError under the fail-closed policy."""
        self._accept((entry,))

    def record_many(self, entries: Sequence[DecisionRecord]) -> None:
        """Queue `entries` in order, as one item (no I/O). When they do not all fit, the default
        policy queues those that fit and counts the rest as lost; fail-closed queues none of
        them, counts them all as lost and raises AuditUnavailableError."""
        if entries:
            self._accept(entries if type(entries) is tuple else list(entries))

    def record_group(self, group: DecisionGroup) -> None:
        """Queue the decisions of one batch request as one item (no I/O); the bound counts its
        items, and what does not fit is handled as in record_many."""
        if group.items:
            self._accept(group)

    def _accept(self, entries: Sequence[DecisionRecord] | DecisionGroup) -> None:
        count = weight(entries)
        if self._closed:
            self._lose(count, "the decision log is closed")
            return
        if self._failing and self._fail_closed:
            self._lose(count, "the decision log can write neither to the database nor to disk")
            return
        with self._lock:
            room = self._capacity - self._queued
            if room >= count:
                kept = count
                self._enqueue(entries, count)
            elif room > 0 and not self._fail_closed:
                kept = room
                self._enqueue(first_entries(entries, room), room)
            else:
                kept = 0
        if kept < count:
            self._lose(count - kept, "the decision log queue is full")

    def has_room(self, count: int) -> bool:
        """Whether `count` more entries would be queued now (see AuditSink); True once closed
        (waiting cannot help: `record` applies the loss policy)."""
        if self._closed:
            return True
        queued = self._queued
        return queued == 0 or queued + count <= self._capacity

    def put(self, entry: DecisionRecord, timeout: float | None = None) -> None:
        """Queue `entry`, waiting for room (see put_many)."""
        self.put_many((entry,), timeout)

    def put_many(
        self, entries: Sequence[DecisionRecord] | DecisionGroup, timeout: float | None = None
    ) -> None:
        """Queue `entries` (or a group), waiting for room: for a feeder that owns a bounded queue
        of its own (the writer process), where waiting is backpressure, not a decision's latency.
        Raises queue.Full when `timeout` passes first. Entries more than the whole queue holds
        wait for the queue to be empty, then go in."""
        count = weight(entries)
        if not count:
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._queued and self._queued + count > self._capacity:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise queue.Full
                self._putters += 1
                try:
                    self._room.wait(remaining)
                finally:
                    self._putters -= 1
            self._enqueue(entries, count)

    def _enqueue(self, entries: Sequence[DecisionRecord] | DecisionGroup, count: int) -> None:
        """Append `entries` (`count` decisions) to the inbox and wake the writer when it waits
        for them; the lock is held."""
        self._inbox.append(entries)
        self._queued += count
        self._queued_rows += 1 if type(entries) is DecisionGroup else count
        if self._writer_waiting and (not self._gathering or self._batch_ready()):
            self._arrived.notify()

    def _batch_ready(self) -> bool:
        """A full batch waits: batch_size rows, or half the queue's bound in decisions (groups
        of a thousand decisions must not fill the queue while the writer gathers rows)."""
        return self._queued_rows >= self._batch_size or 2 * self._queued >= self._capacity

    def close(self, timeout: float = 10.0) -> None:
        """Drain the queue to the database or the spill file, then stop (clean shutdown)."""
        if self._closed:
            return
        self._deadline = time.monotonic() + timeout * 0.8
        self._stop.set()
        with self._lock:
            self._arrived.notify_all()  # out of _gather/_take at once
        self._thread.join(timeout)
        self._closed = True
        if self._thread.is_alive():
            log.error("decision log writer did not stop within %.1fs; %d entries may be lost",
                      timeout, self._queued)
            return
        leftover = self._take(0.0)
        while leftover:
            if self._position is None:
                self._lose(_decisions(leftover), "closed before the chain position was known", quiet=True)
                self._progress(_decisions(leftover))
            else:
                self._keep(leftover, database=False)
            leftover = self._take(0.0)
        if self._position is not None and not self._spill.pending:
            self._positions.save(self._position)  # every batch sent was answered: none in doubt
        self._spill.close()

    @property
    def stats(self) -> DecisionLogStats:
        with self._counts_lock:
            return DecisionLogStats(
                queued=self._queued,
                written=self._written,
                spilled=self._spilled,
                replayed=self._replayed,
                lost=self._lost,
                spill_pending=self._spill.pending,
            )

    @property
    def available(self) -> bool:
        """Whether entries are being kept: the writer thread runs and the last batch went to the
        database or the spill file."""
        return not self._failing and not self._closed and self._thread.is_alive()

    @property
    def failing(self) -> bool:
        """True while the last batch could be kept neither in the database nor in the spill file."""
        return self._failing

    # --- the writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        except Exception:  # pragma: no cover - a bug; make it loud, close() counts what is left
            log.exception("decision log writer stopped")

    def _loop(self) -> None:
        while True:
            if self._position is None and not self._find_position():
                if self._stop.is_set():
                    return
                self._stop.wait(self._min_retry)
                continue
            replay_due = self._spill.pending and time.monotonic() >= self._retry_at
            if not replay_due:
                self._gather(self._kept_at + self._flush_interval)
            batch = self._take(0.0 if replay_due else self._flush_interval)
            if batch:
                self._keep(batch, database=True)
                self._kept_at = time.monotonic()
            if self._spill.pending and time.monotonic() >= self._retry_at:
                self._replay_chunk()
            if self._failing and time.monotonic() >= self._retry_at:
                self._probe()
            if self._stop.is_set() and not self._queued:
                # Everything is in the database or fsynced in the spill file. Replay what is
                # left only while the database answers and the deadline allows.
                if not self._spill.pending or not self._db_up or time.monotonic() >= self._deadline:
                    return

    def _gather(self, until: float) -> None:
        """Wait, until `until` at the latest, for a full batch: a commit costs the database about
        as much as hundreds of rows, so a trickle of entries (Checks, each handed over on its
        own) is written at most once per flush interval instead of once per arrival."""
        with self._lock:
            self._gathering = True
            try:
                while not self._batch_ready() and not self._stop.is_set():
                    remaining = until - time.monotonic()
                    if remaining <= 0:
                        return
                    self._writer_waiting = True
                    try:
                        self._arrived.wait(remaining)
                    finally:
                        self._writer_waiting = False
            finally:
                self._gathering = False

    def _take(self, timeout: float) -> list[DecisionRecord | DecisionGroup]:
        """Up to batch_size rows (a record is a row, a group of any size one row), in the order
        they were queued; waits up to `timeout` for one."""
        with self._lock:
            inbox = self._inbox
            if not inbox and timeout > 0 and not self._stop.is_set():
                self._writer_waiting = True
                try:
                    self._arrived.wait(timeout)
                finally:
                    self._writer_waiting = False
            batch: list[DecisionRecord | DecisionGroup] = []
            room, taken = self._batch_size, 0
            while inbox and room > 0:
                item = inbox.popleft()
                if type(item) is DecisionGroup:
                    batch.append(item)
                    taken += len(item.items)
                    room -= 1
                    continue
                if len(item) > room:
                    inbox.appendleft(item[room:])
                    item = item[:room]
                batch.extend(item)
                taken += len(item)
                room -= len(item)
            self._queued -= taken
            self._queued_rows -= self._batch_size - room
            if batch and self._putters:
                self._room.notify_all()
        return batch

    def _keep(self, batch: list[DecisionRecord | DecisionGroup], *, database: bool) -> None:
        taken = _decisions(batch)
        if self._resent_left > 0:
            batch = self._not_stored_yet(batch)
        if batch:
            before = self._position
            assert before is not None
            rows = self._seal(batch)
            self._store(rows, _decisions(batch), before, database=database)
        self._progress(taken)

    def _store(self, rows: list[tuple[Any, ...]], decisions: int, before: ReplicaPosition, *,
               database: bool) -> None:
        """Insert sealed `rows` (the chain from `before` to the current position), or append them
        to the spill file when the database fails or replay is pending."""
        if database and not self._spill.pending:
            # Saved before the insert: after a crash the batch's numbers are never given again.
            assert self._position is not None
            self._positions.save(self._position, first_in_doubt=before.seq + 1, decisions=decisions)
            try:
                self._repository.insert_rows(rows, statement_timeout_ms=self._timeout_ms, if_absent=False)
            except Exception as exc:  # noqa: BLE001 - any failure: keep the rows on disk instead
                self._database_failed(exc)
            else:
                self._database_answered()
                self._count(written=decisions)
                return
        try:
            self._spill.append([row_mapping(row) for row in rows])
        except OSError as exc:
            # Kept nowhere: give the sequence numbers back so the chain has no gap.
            self._position = before
            self._failing = True
            self._lose(decisions, f"spill file failed ({exc})", quiet=True)
            log.error("decision log: %d entries lost, database and spill file both failed: %s",
                      decisions, exc)
            return
        self._failing = False
        self._count(spilled=decisions)

    def _not_stored_yet(self, batch: list[DecisionRecord | DecisionGroup]) -> list[DecisionRecord | DecisionGroup]:
        """`batch` without the re-sent decisions the dead writer had stored already."""
        kept: list[DecisionRecord | DecisionGroup] = []
        skipped = 0
        for unit in batch:
            count = len(unit.items) if type(unit) is DecisionGroup else 1
            if self._resent_left > 0:
                self._resent_left -= count
                if _first_id(unit) in self._already_stored:
                    skipped += count
                    continue
            kept.append(unit)
        if skipped:
            log.info("decision log: %d re-sent entries were stored before the writer died; not stored again",
                     skipped)
        if self._resent_left <= 0:
            self._already_stored = set()
        return kept

    def _progress(self, decisions: int) -> None:
        self._handled += decisions
        if self._on_progress is not None and self._position is not None:
            self._on_progress(self._handled, self._position.seq)

    def _seal(self, batch: list[DecisionRecord | DecisionGroup]) -> list[tuple[Any, ...]]:
        """Rows for `batch` (ROW_COLUMNS order): attributes protected, next sequence numbers,
        chained hashes; a record is a row, a group one group row. Records are read by position:
        a DecisionRecord or a plain tuple."""
        assert self._position is not None
        seq, previous = self._position.seq, self._position.hash
        replica = self.replica_id
        # (None, record) or (group, its sealed attributes), in order
        units: list[tuple[DecisionGroup | None, Any]] = []
        for unit in batch:
            if type(unit) is not DecisionGroup:
                units.append((None, unit))
                continue
            items = unit.items
            own = () if type(items) is PlainItems else [item[7] for item in items]  # PlainItems: none
            try:
                sealed = self._protector.protect_group(own, unit.attributes, on_error=self._unrecordable_item(unit))
            except Exception as exc:  # noqa: BLE001 - shared attributes that do not encode
                log.warning("decisions %s*: shared attributes not recordable (%s); stored one by one",
                            unit.id_prefix, exc)
                units.extend((None, record) for record in unit.records())
            else:
                units.append((unit, sealed))
        singles = [record for group, record in units if group is None]
        protected = iter(self._protector.protect_many([entry[15] for entry in singles], self._unrecordable(singles)))
        times: dict[Any, str] = {}
        rows = []
        for group, unit in units:
            if group is not None:
                ciphertext, key_id, hashed, item_hashes = unit
                items = group.items
                (_, decided_at, policy_set, policy_version, tenant, subject, actor, caller, latency_us,
                 _, _) = group
                action = resource = rule = reason = request_id = ""
                if type(items) is PlainItems:
                    decision_id = group.id_prefix + items.first_suffix
                    allowed, items_text = items.all_allowed, items.text
                else:
                    decision_id = group.id_prefix + items[0][0]
                    allowed = all(item[3] for item in items)
                    items_text = _group_items(items, item_hashes)
                item_count = len(items)
            else:
                (decision_id, decided_at, policy_set, policy_version, tenant, subject, actor, caller,
                 action, resource, allowed, rule, reason, request_id, latency_us, _) = unit
                ciphertext, key_id, hashed = next(protected)
                items_text, item_count = "", 1
            moment = times.get(decided_at)
            if moment is None:
                moment = times[decided_at] = canonical_time(decided_at)
            texts = (policy_set, tenant, subject, actor, caller, action, resource, rule, reason, request_id)
            for text in texts:
                if type(text) is not str or _NUL in text:
                    # PostgreSQL text cannot hold NUL; one such row would block the log forever.
                    texts = tuple(str(t).replace(_NUL, "\ufffd") for t in texts)
                    break
            policy_set, tenant, subject, actor, caller, action, resource, rule, reason, request_id = texts
            seq += 1
            policy_version, allowed, latency_us = int(policy_version), bool(allowed), int(latency_us)
            digest = chain_hash([
                previous, replica, seq, decision_id, moment, policy_set, policy_version, tenant,
                subject, actor, caller, action, resource, allowed, rule, reason, request_id,
                latency_us, key_id, ciphertext, hashed, items_text, item_count,
            ])
            rows.append((
                decision_id, replica, seq, previous, digest, moment, policy_set, policy_version,
                tenant, subject, actor, caller, action, resource, allowed, rule, reason,
                request_id, latency_us, key_id, ciphertext, hashed, items_text, item_count,
            ))
            previous = digest
        self._position = ReplicaPosition(seq, previous)
        return rows

    @staticmethod
    def _unrecordable_item(group: DecisionGroup) -> Any:
        def warn(index: int, exc: Exception) -> None:
            log.warning("decision %s: attributes not recordable (%s)",
                        group.id_prefix + group.items[index][0], exc)

        return warn

    @staticmethod
    def _unrecordable(batch: list[DecisionRecord]) -> Any:
        def warn(index: int, exc: Exception) -> None:
            log.warning("decision %s: attributes not recordable (%s)", batch[index][0], exc)

        return warn

    def _replay_chunk(self) -> None:
        stored, end = self._spill.read_chunk(self._batch_size * 4)
        rows = [row_from_mapping(row) for row in stored]
        if rows:
            try:
                self._repository.insert_rows(rows, statement_timeout_ms=self._timeout_ms)
            except Exception as exc:  # noqa: BLE001
                self._database_failed(exc)
                return
            self._database_answered()
        self._spill.commit_through(end)
        self._count(replayed=sum(row[_ITEM_COUNT] for row in rows))
        if not self._spill.pending and self._position is not None:
            self._positions.save(self._position)
            log.info("decision log: spill file replayed into the database")

    def _probe(self) -> None:
        try:
            self._repository.position(self.replica_id)
        except Exception as exc:  # noqa: BLE001
            self._database_failed(exc)
            return
        self._database_answered()
        self._failing = False

    def _find_position(self) -> bool:
        spilled, saved = self._spill.last_position, self._positions.read()
        try:
            stored = self._repository.position(self.replica_id)
            known = True
        except Exception as exc:  # noqa: BLE001
            stored, known = None, False
            if spilled is None and saved is None:
                self._database_failed(exc)
                return False
        start = chain_start(stored, database_known=known, spilled=spilled, saved=saved,
                            resent=self._resent_left > 0)
        assert start is not None
        if self._takeover is not None and self._resent_left > 0:
            self._already_stored = self._stored_after(self._takeover.after_seq, known)
        self._position = start.position
        if start.gap is not None:
            gap = start.gap
            log.warning("decision log: recording a crash gap: %s", gap.describe())
            row = gap_row(self.replica_id, start.position.seq + 1, start.position.hash, gap, datetime.now(UTC))
            self._position = ReplicaPosition(start.position.seq + 1, row[_ENTRY_HASH])
            self._store([row], 0, start.position, database=True)
        self._progress(0)
        self._kept_at = time.monotonic()  # the first batch gathers for a flush interval too
        return True

    def _stored_after(self, seq: int, database_known: bool) -> set[str]:
        """Decision ids the dead writer stored after `seq`: in the spill file, and in the
        database when it answers (else only a commit in the instant before the crash is missed)."""
        found = self._spill.decision_ids_after(seq)
        if database_known:
            try:
                found |= self._repository.decision_ids_after(self.replica_id, seq)
            except Exception as exc:  # noqa: BLE001
                log.warning("decision log: cannot read what the dead writer stored (%s)", exc)
        return found

    def _database_failed(self, exc: BaseException) -> None:
        if self._db_up:
            log.warning("decision log: database unavailable, spilling to %s (%s)",
                        self._spill.path, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        self._db_up = False
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, self._max_retry)

    def _database_answered(self) -> None:
        self._db_up = True
        self._backoff = self._min_retry
        self._retry_at = 0.0

    def _count(self, *, written: int = 0, spilled: int = 0, replayed: int = 0) -> None:
        with self._counts_lock:
            self._written += written
            self._spilled += spilled
            self._replayed += replayed

    def _lose(self, n: int, why: str, *, quiet: bool = False) -> None:
        with self._counts_lock:
            self._lost += n
        if self._fail_closed and not quiet:
            raise AuditUnavailableError(why)


_ITEM_COUNT = ROW_COLUMNS.index("item_count")
_ENTRY_HASH = ROW_COLUMNS.index("entry_hash")


def _first_id(unit: Any) -> str:
    """The decision id a unit is stored under (a group row's is its first item's)."""
    if type(unit) is DecisionGroup:
        items = unit.items
        return unit.id_prefix + (items.first_suffix if type(items) is PlainItems else items[0][0])
    return str(unit[0])


def _decisions(batch: Sequence[DecisionRecord | DecisionGroup]) -> int:
    return sum(len(unit.items) if type(unit) is DecisionGroup else 1 for unit in batch)


def _group_items(items: Sequence[GroupItem], hashes: list[str]) -> str:
    """The `items` column of a group row of GroupItems, given each item's hashed attributes."""
    return stored_items_json([
        (suffix, action, resource, bool(allowed), rule, reason, request_id, hashed)
        for (suffix, action, resource, allowed, rule, reason, request_id, _), hashed
        in zip(items, hashes, strict=True)
    ])


def first_entries(entries: Sequence[DecisionRecord] | DecisionGroup, count: int) -> Any:
    """The first `count` entries (of a group: its first `count` items)."""
    if type(entries) is DecisionGroup:
        return entries._replace(items=entries.items[:count])
    return entries[:count]
