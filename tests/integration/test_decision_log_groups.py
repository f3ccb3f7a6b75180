"""Entries handed over in groups (record_many) and buffered single entries, on SQLite and PostgreSQL,
through the in-process DecisionLog and the writer process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import MappingProxyType

import pytest
from sqlalchemy import Engine, create_engine, select

from policy_engine.audit import AuditUnavailableError, DecisionRecord, NullSink
from policy_engine.audit.process import _TAKEN, DecisionLogProcess
from policy_engine.store.audit_tables import decision_log
from policy_engine.store.decision_log import DecisionLogRepository
from tests.integration.test_decision_log import decision, open_log, protector, wait_until

UNREACHABLE = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"


def batch_of(count: int, start: int = 0) -> list[DecisionRecord]:
    """Entries shaped like one BatchCheck's: one subject attributes object shared by all."""
    subject = MappingProxyType({"email": "carol@example.com", "clearance": 3})
    return [
        decision(n, attributes={"subject": subject, "actor": {},
                                "resource": MappingProxyType({"classification": n % 4}), "context": {}})
        for n in range(start, start + count)
    ]


def stored_in_seq_order(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.scalars(select(decision_log.c.decision_id).order_by(decision_log.c.seq)))


def open_process(url: str, spill_dir: Path, **options) -> DecisionLogProcess:  # type: ignore[no-untyped-def]
    settings = {"replica_id": "replica-p", "spill_dir": spill_dir, "protector": protector(), "queue_size": 20_000}
    settings.update(options)
    return DecisionLogProcess(url, **settings)


class TestRecordMany:
    def test_groups_are_stored_in_order_with_their_contents(self, engine: Engine, tmp_path: Path) -> None:
        """record_many stores every entry once, in the order given, with its fields and attributes."""
        sink = open_log(engine, tmp_path / "spill", batch_size=64)
        sent = batch_of(150) + [decision(999)] + batch_of(120, start=150)
        sink.record_many(sent[:150])
        sink.record(sent[150])
        sink.record_many(tuple(sent[151:]))
        sink.close(timeout=30)
        assert stored_in_seq_order(engine) == [entry.decision_id for entry in sent]
        repository = DecisionLogRepository(engine)
        stored = repository.get(sent[7].decision_id)
        assert (stored.resource, stored.request_id, stored.allowed, stored.seq) == ("tool:t7", "req-7", True, 8)
        assert protector().reveal(stored.attributes_ciphertext, stored.key_id) == {
            "subject": {"clearance": 3}, "actor": {}, "resource": {"classification": 3}, "context": {}}
        assert stored.hashed_attributes == {"subject.email": protector().hash_value("carol@example.com")}
        ciphertexts = {repository.get(e.decision_id).attributes_ciphertext for e in sent[:20]}
        assert len(ciphertexts) == 20  # each entry encrypted on its own (fresh nonce), even when equal
        report = repository.verify()
        assert report.ok and report.rows_checked == len(sent), report.lines()

    def test_writer_process_stores_groups_in_order(self, database_url: str, engine: Engine, tmp_path: Path) -> None:
        """Through the writer process, groups and single entries keep their order and contents."""
        sink = open_process(database_url, tmp_path / "spill")
        sent = batch_of(300) + [decision(1000)] + batch_of(50, start=300)
        sink.record_many(sent[:300])
        sink.record(sent[300])
        sink.record_many(sent[301:])
        sink.close(timeout=60)
        assert stored_in_seq_order(engine) == [entry.decision_id for entry in sent]
        assert (sink.stats.written, sink.stats.lost, sink.stats.queued) == (len(sent), 0, 0)
        stored = DecisionLogRepository(engine).get(sent[299].decision_id)
        assert protector().reveal(stored.attributes_ciphertext, stored.key_id)["resource"] == {"classification": 3}
        assert DecisionLogRepository(engine).verify().ok

    def test_null_sink_takes_groups(self) -> None:
        """NullSink accepts record_many and keeps nothing."""
        NullSink().record_many(batch_of(3))


class TestBuffering:
    def test_buffered_single_entries_are_flushed_on_close(self, database_url: str, engine: Engine,
                                                         tmp_path: Path) -> None:
        """Single entries still buffered in the serving process when close() is called are all stored."""
        sink = open_process(database_url, tmp_path / "spill", flush_interval=3600.0, flush_size=10_000)
        sent = [decision(n) for n in range(25)]
        for entry in sent:
            sink.record(entry)
        time.sleep(0.2)
        assert sink.stats.queued == 25 and sink.stats.written == 0  # still in the buffer
        sink.close(timeout=60)
        assert stored_in_seq_order(engine) == [entry.decision_id for entry in sent]
        assert sink.stats.lost == 0

    def test_buffer_flushes_when_full_and_after_the_interval(self, database_url: str, engine: Engine,
                                                             tmp_path: Path) -> None:
        """A full buffer is handed over at once; a partial one within the flush interval."""
        sink = open_process(database_url, tmp_path / "spill", flush_interval=0.01, flush_size=10)
        try:
            for n in range(10):
                sink.record(decision(n))
            wait_until(lambda: sink.stats.written == 10)
            sink.record(decision(10))
            wait_until(lambda: sink.stats.written == 11)
        finally:
            sink.close(timeout=60)


class TestLossWithGroups:
    def test_fail_closed_refuses_a_whole_group_that_does_not_fit(self, sqlite_url: str, tmp_path: Path) -> None:
        """Under fail_closed, a group that does not fit is refused whole, counted lost, AuditUnavailableError."""
        engine = create_engine(sqlite_url.replace("policy-engine.db", "missing/dir/x.db"))
        sink = open_log(engine, tmp_path / "spill", queue_size=150, on_loss="fail_closed")
        sink.record_many(batch_of(100))
        with pytest.raises(AuditUnavailableError):
            sink.record_many(batch_of(100))
        assert (sink.stats.lost, sink.stats.queued) == (100, 100)
        sink.record_many(batch_of(50))  # what fits is still taken
        assert (sink.stats.lost, sink.stats.queued) == (100, 150)
        sink.close(timeout=1)

    def test_count_policy_keeps_what_fits_and_counts_the_rest(self, sqlite_url: str, tmp_path: Path) -> None:
        """Under the default policy, the part of a group that fits is queued and the rest counted lost."""
        engine = create_engine(sqlite_url.replace("policy-engine.db", "missing/dir/x.db"))
        sink = open_log(engine, tmp_path / "spill", queue_size=150)
        sink.record_many(batch_of(100))
        sink.record_many(batch_of(100))
        assert (sink.stats.lost, sink.stats.queued) == (50, 150)
        sink.record(decision(1))
        assert sink.stats.lost == 51
        sink.close(timeout=1)

    @pytest.mark.parametrize("on_loss", ["count", "fail_closed"])
    def test_writer_process_bounds_entries_not_groups(self, on_loss: str, tmp_path: Path) -> None:
        """The writer process's bound counts entries: groups beyond it are lost (count) or refused (fail_closed)."""
        sink = open_process(UNREACHABLE, tmp_path / "spill", queue_size=150, on_loss=on_loss)
        try:
            sink.record_many(batch_of(100))
            # The writer takes that group into its own queue, then cannot take the next one (its
            # own queue of 150 has no room for 100 more while the database is unreachable).
            wait_until(lambda: sink._counters[_TAKEN] == 100)  # noqa: SLF001
            sink.record_many(batch_of(100))
            if on_loss == "fail_closed":
                with pytest.raises(AuditUnavailableError):
                    sink.record_many(batch_of(100))
                assert sink.stats.lost == 100
                with pytest.raises(AuditUnavailableError):
                    sink.record_many(batch_of(51))
                sink.record_many(batch_of(50))
                assert sink.stats.lost == 151 and sink.stats.queued == 250
            else:
                sink.record_many(batch_of(100))
                assert sink.stats.lost == 50
                sink.record(decision(1))
                assert sink.stats.lost == 51
        finally:
            sink.close(timeout=2)


_ORPHAN_SCRIPT = """
import sys, time
from pathlib import Path
from policy_engine.audit.process import _TAKEN, DecisionLogProcess
from tests.integration.test_decision_log_groups import UNREACHABLE, batch_of
from tests.integration.test_decision_log import protector, wait_until

sink = DecisionLogProcess(UNREACHABLE, replica_id="orphan", spill_dir=Path(sys.argv[1]),
                          protector=protector(), queue_size=150)
sink.record_many(batch_of(100))
wait_until(lambda: sink._counters[_TAKEN] == 100)
sink.record_many(batch_of(100))  # the writer blocks on this group: its own queue is full
time.sleep(1)
print(sink._process.pid, flush=True)
time.sleep(120)
"""


def test_a_blocked_writer_does_not_outlive_a_killed_serving_process(tmp_path: Path) -> None:
    """The writer process, stuck behind an unreachable database, stops once its serving process
    is killed (it ignores SIGTERM, so an orphan would live forever)."""
    root = Path(__file__).resolve().parents[2]
    parent = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN_SCRIPT, str(tmp_path / "spill")], cwd=root, stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        writer_pid = int(parent.stdout.readline())
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)

        def writer_gone() -> bool:
            try:
                os.kill(writer_pid, 0)
            except ProcessLookupError:
                return True
            # an exited child of the killed parent is reaped by init; a zombie counts as gone
            return Path(f"/proc/{writer_pid}/stat").read_text().split(") ", 1)[1].startswith("Z")

        wait_until(writer_gone, timeout=45)
    finally:
        parent.kill()
