"""DecisionLogProcess: the decision log's writer in a process of its own.

Sealing an entry (redaction, encryption, the hash chain) and inserting it
cost tens of microseconds; in the serving process that work would take the
GIL from deciding. Here the serving process only puts a flat tuple on a
bounded multiprocessing queue; a child process runs an ordinary DecisionLog
(same spill file, chain and exactly-once replay) and feeds it with
backpressure. Durability is the DecisionLog's, plus this queue: a hard crash
of the serving process can lose what sits in it (at most `queue_size`).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal
import time
from pathlib import Path
from typing import Any

from policy_engine.audit.errors import AuditUnavailableError
from policy_engine.audit.protection import AttributeProtector
from policy_engine.audit.records import DecisionRecord
from policy_engine.audit.writer import DecisionLog, DecisionLogStats

__all__ = ["DecisionLogProcess"]

log = logging.getLogger(__name__)

_WRITTEN, _SPILLED, _REPLAYED, _LOST, _PENDING = range(5)


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
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self._queue: Any = context.Queue(maxsize=queue_size)
        self._counters: Any = context.Array("q", 5, lock=False)
        self._fail_closed = on_loss == "fail_closed"
        self._lost_here = 0
        self._closed = False
        self._process = context.Process(
            target=_writer_main,
            args=(db_url, replica_id, str(spill_dir), protector, queue_size, batch_size, on_loss,
                  self._queue, self._counters, os.getpid()),
            name=f"decision-log:{replica_id}",
            daemon=True,
        )
        self._process.start()

    def record(self, entry: DecisionRecord) -> None:
        if self._closed:
            self._lost_here += 1
            return
        try:
            self._queue.put_nowait(_flat(entry))
        except queue.Full:
            self._lost_here += 1
            if self._fail_closed:
                raise AuditUnavailableError("the decision log queue is full") from None

    def close(self, timeout: float = 10.0) -> None:
        """Send the end marker, and wait for the child to drain to the database or spill file."""
        if self._closed:
            return
        self._closed = True
        try:
            self._queue.put(None, timeout=timeout / 2)
        except queue.Full:
            log.error("decision log: queue still full at shutdown")
        self._process.join(timeout)
        if self._process.is_alive():
            log.error("decision log writer did not stop within %.1fs", timeout)
            self._process.terminate()
        self._queue.close()
        self._queue.join_thread()

    @property
    def stats(self) -> DecisionLogStats:
        counters = self._counters
        try:
            queued = self._queue.qsize()
        except (NotImplementedError, OSError):
            queued = 0
        return DecisionLogStats(
            queued=queued,
            written=counters[_WRITTEN],
            spilled=counters[_SPILLED],
            replayed=counters[_REPLAYED],
            lost=counters[_LOST] + self._lost_here,
            spill_pending=bool(counters[_PENDING]),
        )


def _flat(entry: DecisionRecord) -> tuple[Any, ...]:
    attributes = {party: dict(values) for party, values in entry.attributes.items()}
    return (
        entry.decision_id, entry.decided_at, entry.policy_set, entry.policy_version, entry.tenant,
        entry.subject, entry.actor, entry.caller, entry.action, entry.resource, entry.allowed,
        entry.rule, entry.reason, entry.request_id, entry.latency_us, attributes,
    )


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
) -> None:
    # The parent decides when to stop (the end marker); a terminal's Ctrl-C or a SIGTERM to the
    # process group must not kill the writer before it has drained.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
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
    while True:
        try:
            item = inbox.get(timeout=0.5)
        except queue.Empty:
            item = ...
        if item is None:
            break
        if item is not ...:
            sink.put(DecisionRecord(*item))
        now = time.monotonic()
        if now - published > 0.25:
            _publish(sink.stats, counters)
            published = now
        if item is ... and os.getppid() != parent_pid:
            break  # the serving process is gone without saying goodbye: drain what we have
    sink.close(timeout=30.0)
    _publish(sink.stats, counters)


def _publish(stats: DecisionLogStats, counters: Any) -> None:
    counters[_WRITTEN] = stats.written
    counters[_SPILLED] = stats.spilled
    counters[_REPLAYED] = stats.replayed
    counters[_LOST] = stats.lost
    counters[_PENDING] = int(bool(stats.spill_pending))
