"""The decision log against real SQLite and PostgreSQL: exactly once, outages, chain, keys, retention."""

from __future__ import annotations

import shutil
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import Engine, create_engine, func, select

from policy_engine.audit import (
    AttributeDecryptionError,
    AttributeKeyError,
    AttributeProtector,
    AuditUnavailableError,
    DecisionLog,
    DecisionRecord,
    Retention,
)
from policy_engine.errors import NotFoundError
from policy_engine.store import ensure_schema, open_database
from policy_engine.store.audit_tables import decision_log, decision_log_checkpoints
from policy_engine.store.decision_log import DecisionLogRepository
from tests.support.tcp_proxy import TcpProxy

KEY_1 = bytes(range(32))
KEY_2 = bytes(range(32, 64))
HASH_KEY = b"h" * 32


def protector(keys: dict[str, bytes] | None = None, active: str = "k1") -> AttributeProtector:
    return AttributeProtector(
        keys or {"k1": KEY_1}, active, hashed=["subject.email"], hash_key=HASH_KEY
    )


def decision(
    n: int = 0,
    *,
    tenant: str = "acme",
    subject: str = "alice",
    allowed: bool = True,
    decided_at: datetime | None = None,
    attributes: dict | None = None,
) -> DecisionRecord:
    return DecisionRecord(
        decision_id=uuid.uuid4().hex,
        decided_at=decided_at or datetime.now(UTC),
        policy_set="default",
        policy_version=3,
        tenant=tenant,
        subject=subject,
        actor="rag_bot",
        caller="spiffe://acme/app",
        action="invoke",
        resource=f"tool:t{n}",
        allowed=allowed,
        rule="p, role:user, tool:*, invoke" if allowed else "",
        reason="matched" if allowed else "no rule matched",
        request_id=f"req-{n}",
        latency_us=42,
        attributes=attributes
        if attributes is not None
        else {"subject": {"email": "alice@example.com", "clearance": 2}, "context": {"ip": "10.0.0.1"}},
    )


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        time.sleep(0.05)


def stored_ids(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.scalars(select(decision_log.c.decision_id)))


def open_log(engine: Engine, spill_dir: Path, **options) -> DecisionLog:  # type: ignore[no-untyped-def]
    settings = {"replica_id": "replica-a", "spill_dir": spill_dir, "protector": protector(),
                "queue_size": 20_000, "retry_interval": 0.05, "max_retry_interval": 0.3}
    settings.update(options)
    return DecisionLog(engine, **settings)


def cut_proxy(proxy: TcpProxy) -> None:
    """Stop the proxy for good. TcpProxy.stop closes its listener, but a thread blocked in
    accept() keeps it listening for one more connection (close() does not wake accept on
    Linux); use up that accept, then cut whatever it let through."""
    proxy.stop()
    try:
        socket.create_connection(("127.0.0.1", proxy.port), timeout=1).close()
    except OSError:
        pass
    time.sleep(0.2)
    proxy.stop()


@dataclass
class Outage:
    """A real database the test can cut and restore: the writer's engine goes through it."""

    engine: Engine  # the writer's: affected by the outage
    direct: Engine  # the test's: always reaches the database
    cut: Callable[[], None]
    restore: Callable[[], None]


@pytest.fixture(params=["sqlite", "postgres"])
def outage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Outage]:
    """PostgreSQL behind a TCP proxy that is stopped; SQLite held under an exclusive lock."""
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        direct = open_database(url)
        ensure_schema(direct, url)
        proxy = TcpProxy(("127.0.0.1", 5432))
        proxy.start()
        writer = open_database(url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"))
        yield Outage(writer, direct, lambda: cut_proxy(proxy), proxy.start)
        proxy.close()
    else:
        path = tmp_path / "log.db"
        direct = open_database(f"sqlite:///{path}")
        ensure_schema(direct, f"sqlite:///{path}")
        # A short busy timeout: a locked database is a database that does not answer.
        writer = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0.1})
        holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

        def cut() -> None:
            holder.execute("BEGIN EXCLUSIVE")

        def restore() -> None:
            holder.execute("ROLLBACK")

        yield Outage(writer, direct, cut, restore)
        if holder.in_transaction:
            holder.execute("ROLLBACK")
        holder.close()
    writer.dispose()
    direct.dispose()


class TestExactlyOnce:
    def test_burst_of_ten_thousand_is_logged_exactly_once(self, engine: Engine, tmp_path: Path) -> None:
        """Every decision of a 10,000-decision burst is in the log exactly once, chained."""
        sink = open_log(engine, tmp_path / "spill")
        sent = [decision(n) for n in range(10_000)]
        for entry in sent:
            sink.record(entry)
        sink.close(timeout=60)
        ids = stored_ids(engine)
        assert len(ids) == 10_000
        assert set(ids) == {entry.decision_id for entry in sent}
        assert sink.stats.lost == 0
        report = DecisionLogRepository(engine).verify()
        assert report.ok, report.lines()
        assert report.rows_checked == 10_000

    def test_database_cut_mid_burst_keeps_every_entry_once(self, outage: Outage, tmp_path: Path) -> None:
        """Cutting the database in the middle of a burst, then restoring it: every entry exactly once."""
        sink = open_log(outage.engine, tmp_path / "spill")
        sent = [decision(n) for n in range(10_000)]
        for n, entry in enumerate(sent):
            if n == 3_000:
                wait_until(lambda: sink.stats.written > 0)
                outage.cut()
            sink.record(entry)
        wait_until(lambda: sink.stats.spilled > 0)
        outage.restore()
        wait_until(lambda: sink.stats.queued == 0 and not sink.stats.spill_pending, timeout=60)
        sink.close(timeout=30)
        ids = stored_ids(outage.direct)
        assert len(ids) == 10_000
        assert set(ids) == {entry.decision_id for entry in sent}
        assert sink.stats.replayed > 0 and sink.stats.lost == 0
        report = DecisionLogRepository(outage.direct).verify()
        assert report.ok, report.lines()

    def test_shutdown_during_outage_replays_on_next_start(self, outage: Outage, tmp_path: Path) -> None:
        """Entries spilled when the process stops during an outage are replayed by the next start, chain intact."""
        spill = tmp_path / "spill"
        first = open_log(outage.engine, spill)
        before = [decision(n) for n in range(300)]
        for entry in before[:100]:
            first.record(entry)
        wait_until(lambda: first.stats.written == 100)
        outage.cut()
        for entry in before[100:]:
            first.record(entry)
        first.close(timeout=10)
        assert first.stats.spilled == 200 and first.stats.lost == 0
        outage.restore()
        second = open_log(outage.engine, spill)
        after = decision(999)
        second.record(after)
        second.close(timeout=30)
        assert len(stored_ids(outage.direct)) == 301
        repository = DecisionLogRepository(outage.direct)
        assert repository.get(after.decision_id).seq == 301
        assert repository.verify().ok

    def test_replaying_a_spill_file_twice_stores_nothing_twice(self, outage: Outage, tmp_path: Path) -> None:
        """A crash after replay but before the spill file was emptied replays again without duplicates."""
        spill = tmp_path / "spill"
        first = open_log(outage.engine, spill)
        first.record(decision(0))
        wait_until(lambda: first.stats.written == 1)
        outage.cut()
        for n in range(1, 51):
            first.record(decision(n))
        first.close(timeout=10)
        saved = tmp_path / "saved.spill"
        shutil.copy(spill / "replica-a.spill", saved)
        outage.restore()
        open_log(outage.engine, spill).close(timeout=30)
        assert len(stored_ids(outage.direct)) == 51
        shutil.copy(saved, spill / "replica-a.spill")  # as if the truncation never happened
        third = open_log(outage.engine, spill)
        third.record(decision(51))
        third.close(timeout=30)
        assert third.stats.replayed >= 50  # the old file again (and the new entry, if queued behind it)
        assert len(stored_ids(outage.direct)) == 52
        assert DecisionLogRepository(outage.direct).verify().ok


class TestLossPolicy:
    def test_fail_closed_refuses_when_the_queue_is_full(self, sqlite_url: str, tmp_path: Path) -> None:
        """Under fail_closed, a decision whose entry cannot be queued raises AuditUnavailableError."""
        engine = create_engine(sqlite_url.replace("policy-engine.db", "missing/dir/x.db"))
        sink = open_log(engine, tmp_path / "spill", queue_size=5, on_loss="fail_closed")
        for n in range(5):
            sink.record(decision(n))
        with pytest.raises(AuditUnavailableError):
            sink.record(decision(5))
        assert sink.stats.lost == 1
        sink.close(timeout=1)

    def test_count_policy_keeps_deciding_and_counts_the_loss(self, sqlite_url: str, tmp_path: Path) -> None:
        """Under the default policy, entries that cannot be queued are counted as lost, no error."""
        engine = create_engine(sqlite_url.replace("policy-engine.db", "missing/dir/x.db"))
        sink = open_log(engine, tmp_path / "spill", queue_size=5)
        for n in range(8):
            sink.record(decision(n))
        assert sink.stats.lost == 3
        sink.close(timeout=1)
        assert sink.stats.lost == 8  # never knew where its chain continues: nothing was kept


class TestProtection:
    def test_attributes_unreadable_without_the_key(self, engine: Engine, tmp_path: Path) -> None:
        """Stored attributes do not contain the values; the key reveals them, no key or a wrong key does not."""
        sink = open_log(engine, tmp_path / "spill")
        entry = decision(attributes={"subject": {"email": "alice@example.com", "clearance": 2},
                                     "resource": {"owner": "carol-secret-owner"}})
        sink.record(entry)
        sink.close()
        with engine.connect() as conn:
            raw = conn.execute(select(decision_log)).one()
        assert "carol-secret-owner" not in str(tuple(raw))
        assert "alice@example.com" not in str(tuple(raw))
        stored = DecisionLogRepository(engine).get(entry.decision_id)
        assert protector().reveal(stored.attributes_ciphertext, stored.key_id) == {
            "subject": {"clearance": 2}, "resource": {"owner": "carol-secret-owner"}}
        assert stored.hashed_attributes == {"subject.email": protector().hash_value("alice@example.com")}
        with pytest.raises(AttributeKeyError):
            protector({"k2": KEY_2}, "k2").reveal(stored.attributes_ciphertext, stored.key_id)
        with pytest.raises(AttributeDecryptionError):
            protector({"k1": KEY_2}).reveal(stored.attributes_ciphertext, stored.key_id)

    def test_rotated_keys_read_old_and_new_rows(self, engine: Engine, tmp_path: Path) -> None:
        """After rotation, new rows use the new key id and old rows still open with the old key."""
        old, new = decision(1), decision(2)
        first = open_log(engine, tmp_path / "spill")
        first.record(old)
        first.close()
        rotated = protector({"k1": KEY_1, "k2": KEY_2}, active="k2")
        second = open_log(engine, tmp_path / "spill", protector=rotated)
        second.record(new)
        second.close()
        repository = DecisionLogRepository(engine)
        rows = {d.decision_id: d for d in (repository.get(old.decision_id), repository.get(new.decision_id))}
        assert rows[old.decision_id].key_id == "k1" and rows[new.decision_id].key_id == "k2"
        for row in rows.values():
            assert rotated.reveal(row.attributes_ciphertext, row.key_id)["context"] == {"ip": "10.0.0.1"}
        with pytest.raises(AttributeKeyError):
            protector({"k2": KEY_2}, "k2").reveal(rows[old.decision_id].attributes_ciphertext, "k1")
        assert repository.verify().ok

    def test_credentials_never_reach_the_log(self, engine: Engine, tmp_path: Path) -> None:
        """An authorization attribute and token-shaped values are dropped before encryption."""
        sink = open_log(engine, tmp_path / "spill")
        entry = decision(attributes={"context": {"authorization": "Bearer abc.def.ghi",
                                                 "note": "eyJhbGciOi.eyJzdWIiOi.c2ln", "channel": "chat"}})
        sink.record(entry)
        sink.close()
        stored = DecisionLogRepository(engine).get(entry.decision_id)
        assert protector().reveal(stored.attributes_ciphertext, stored.key_id) == {
            "context": {"note": "[redacted]", "channel": "chat"}}


class TestChain:
    def _fill(self, engine: Engine, tmp_path: Path, count: int = 20) -> list[DecisionRecord]:
        sink = open_log(engine, tmp_path / "spill")
        sent = [decision(n) for n in range(count)]
        for entry in sent:
            sink.record(entry)
        sink.close()
        return sent

    def test_updates_are_refused_by_the_database(self, engine: Engine, tmp_path: Path) -> None:
        """The database itself refuses to edit a decision row."""
        self._fill(engine, tmp_path, 1)
        with pytest.raises(sqlalchemy.exc.DBAPIError), engine.begin() as conn:
            conn.execute(sqlalchemy.update(decision_log).values(allowed=False))

    def test_deleted_row_is_a_gap(self, engine: Engine, tmp_path: Path) -> None:
        """Deleting a row (not a purge) makes verify report a gap at that seq."""
        sent = self._fill(engine, tmp_path)
        with engine.begin() as conn:
            conn.execute(sqlalchemy.delete(decision_log).where(decision_log.c.decision_id == sent[7].decision_id))
        report = DecisionLogRepository(engine).verify()
        problem = report.replicas[0].problem
        assert problem is not None and (problem.kind, problem.seq) == ("gap", 8)

    def test_edited_row_is_detected(self, engine: Engine, tmp_path: Path) -> None:
        """A row edited behind the triggers' back no longer matches its hash."""
        sent = self._fill(engine, tmp_path)
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("DROP TRIGGER decision_log_immutable ON decision_log")
            else:
                conn.exec_driver_sql("DROP TRIGGER decision_log_no_update")
            conn.execute(
                sqlalchemy.update(decision_log)
                .where(decision_log.c.decision_id == sent[4].decision_id)
                .values(allowed=False)
            )
        problem = DecisionLogRepository(engine).verify().replicas[0].problem
        assert problem is not None and (problem.kind, problem.decision_id) == ("edited", sent[4].decision_id)


class TestRetention:
    def test_purge_keeps_recent_and_held_and_verifies(self, engine: Engine, tmp_path: Path) -> None:
        """Purging old decisions in small batches keeps recent ones and held tenants', and the chain still verifies."""
        repository = DecisionLogRepository(engine)
        repository.set_legal_hold("held", True)
        old = datetime.now(UTC) - timedelta(days=40)
        sink = open_log(engine, tmp_path / "spill")
        for n in range(30):
            sink.record(decision(n, tenant="held" if n % 3 == 0 else "acme", decided_at=old + timedelta(seconds=n)))
        recent = [decision(100 + n) for n in range(5)]
        for entry in recent:
            sink.record(entry)
        sink.close()
        purged = Retention(repository, days=30, batch_size=4, max_batches=100).run_once()
        assert purged == 20
        assert repository.count() == 15
        assert {d.tenant for d in repository.query(limit=100) if d.decided_at < old + timedelta(days=1)} == {"held"}
        with engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(decision_log_checkpoints)) == 5
        report = repository.verify()
        assert report.ok, report.lines()
        assert report.replicas[0].purged_up_to == 30

    def test_purge_limited_batches_then_release_hold(self, engine: Engine, tmp_path: Path) -> None:
        """max_batches bounds one round; releasing a hold lets the next round purge that tenant too."""
        repository = DecisionLogRepository(engine)
        repository.set_legal_hold("held", True)
        old = datetime.now(UTC) - timedelta(days=40)
        sink = open_log(engine, tmp_path / "spill")
        for n in range(12):
            sink.record(decision(n, tenant="held" if n < 2 else "acme", decided_at=old))
        sink.close()
        assert repository.purge(older_than=old + timedelta(days=1), batch_size=3, max_batches=2) == 6
        repository.set_legal_hold("held", False)
        assert repository.purge(older_than=old + timedelta(days=1), batch_size=3) == 6
        assert repository.count() == 0
        assert repository.verify().ok

    def test_deleting_a_held_row_below_the_checkpoint_is_detected(self, engine: Engine, tmp_path: Path) -> None:
        """A held row deleted after a purge is not mistaken for part of the purge."""
        repository = DecisionLogRepository(engine)
        repository.set_legal_hold("held", True)
        old = datetime.now(UTC) - timedelta(days=40)
        sink = open_log(engine, tmp_path / "spill")
        for n in range(10):
            sink.record(decision(n, tenant="held" if n == 2 else "acme", decided_at=old))
        sink.record(decision(10))
        sink.close()
        repository.purge(older_than=old + timedelta(days=1))
        with engine.begin() as conn:
            conn.execute(sqlalchemy.delete(decision_log).where(decision_log.c.tenant == "held"))
        problem = repository.verify().replicas[0].problem
        assert problem is not None and problem.kind == "unaccounted"


class TestReading:
    def test_query_filters_newest_first_and_get(self, engine: Engine, tmp_path: Path) -> None:
        """query filters by subject, tenant and denial, newest first; get of an unknown id is NotFoundError."""
        now = datetime.now(UTC)
        sink = open_log(engine, tmp_path / "spill")
        entries = [
            decision(0, subject="alice", decided_at=now - timedelta(minutes=3)),
            decision(1, subject="alice", allowed=False, decided_at=now - timedelta(minutes=2)),
            decision(2, subject="bob", tenant="other", decided_at=now - timedelta(minutes=1)),
        ]
        for entry in entries:
            sink.record(entry)
        sink.close()
        repository = DecisionLogRepository(engine)
        assert [d.decision_id for d in repository.query(subject="alice")] == [
            entries[1].decision_id, entries[0].decision_id]
        assert [d.decision_id for d in repository.query(denied=True)] == [entries[1].decision_id]
        assert [d.decision_id for d in repository.query(tenant="other")] == [entries[2].decision_id]
        assert len(repository.query(since=now - timedelta(seconds=150))) == 2
        got = repository.get(entries[0].decision_id)
        assert (got.subject, got.policy_version, got.allowed, got.latency_us) == ("alice", 3, True, 42)
        with pytest.raises(NotFoundError):
            repository.get("nope")


class TestAdminAudit:
    def test_admin_event_commits_and_rolls_back_with_the_caller(self, engine: Engine) -> None:
        """An admin audit row is written inside the caller's transaction, and rolls back with it."""
        repository = DecisionLogRepository(engine)
        with pytest.raises(RuntimeError), engine.begin() as conn:
            repository.record_admin_event(conn, action="activate", policy_set="default", version=2,
                                          actor="ops@acme", detail={"reason": "try"})
            raise RuntimeError("the change failed")
        assert repository.admin_events() == []
        with engine.begin() as conn:
            repository.record_admin_event(conn, action="push", policy_set="default", version=3,
                                          actor="ops@acme", detail={"sha256": "ab"})
        [event] = repository.admin_events()
        assert (event.action, event.version, event.actor, event.detail) == ("push", 3, "ops@acme", {"sha256": "ab"})

    def test_writer_threads_do_not_block_each_other(self, engine: Engine, tmp_path: Path) -> None:
        """Decisions recorded from several threads at once are all logged, each once."""
        sink = open_log(engine, tmp_path / "spill")
        sent: list[list[DecisionRecord]] = [[decision(n) for n in range(500)] for _ in range(4)]
        threads = [threading.Thread(target=lambda batch=batch: [sink.record(e) for e in batch]) for batch in sent]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        sink.close()
        assert sorted(stored_ids(engine)) == sorted(e.decision_id for batch in sent for e in batch)
        assert DecisionLogRepository(engine).verify().ok


def test_spill_directory_is_locked_per_replica(engine: Engine, tmp_path: Path) -> None:
    """A second writer with the same replica id and spill directory is refused."""
    first = open_log(engine, tmp_path / "spill")
    try:
        with pytest.raises(Exception, match="in use"):
            open_log(engine, tmp_path / "spill")
    finally:
        first.close()
