"""Entries handed over in groups (record_many) and buffered single entries, on SQLite and PostgreSQL,
through the in-process DecisionLog and the writer process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

import pytest
from sqlalchemy import Engine, create_engine, event, func, select

from policy_engine.audit import (
    PLAIN_ITEM_ATTRIBUTES,
    AttributeProtector,
    AuditUnavailableError,
    DecisionGroup,
    DecisionRecord,
    GroupItem,
    NullSink,
    PlainItems,
)
from policy_engine.audit.process import _TAKEN, DecisionLogProcess
from policy_engine.audit.writer import first_entries
from policy_engine.store.audit_tables import decision_log
from policy_engine.errors import NotFoundError
from policy_engine.store.db import downgrade
from policy_engine.store.decision_log import DecisionLogRepository
from tests.integration.test_decision_log import Outage, decision, open_log, protector, wait_until
from tests.integration.test_decision_log import outage  # noqa: F401 - a fixture, used by name

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

    def test_the_pipe_to_the_writer_holds_a_whole_flush(self, database_url: str, tmp_path: Path) -> None:
        """The pipe's buffer is widened to 1 MiB (as far as the system allows): a flush of twenty
        FilterAllowed groups goes in one write instead of waiting for the writer to read."""
        import fcntl

        sink = open_process(database_url, tmp_path / "spill")
        try:
            allowed = int(Path("/proc/sys/fs/pipe-max-size").read_text())
            assert fcntl.fcntl(sink._pipe.fileno(), fcntl.F_GETPIPE_SZ) == min(1 << 20, allowed)  # noqa: SLF001
        finally:
            sink.close(timeout=60)

    def test_a_full_buffer_is_counted_in_what_pickling_costs(self, database_url: str, engine: Engine,
                                                             tmp_path: Path) -> None:
        """A group of PlainItems crosses as one text: it fills the buffer as one entry does, not
        as its hundred decisions; items with attributes of their own count one by one."""
        sink = open_process(database_url, tmp_path / "spill", flush_interval=3600.0, flush_size=3)
        try:
            for _ in range(3):
                sink.record_group(plain_group(100))
            wait_until(lambda: sink.stats.written == 300)  # the writer process is up
            sink.record_group(plain_group(100))
            sink.record_group(plain_group(100))
            time.sleep(1.0)
            assert (sink.stats.queued, sink.stats.written) == (200, 300)  # still in the buffer
            sink.record_group(plain_group(100))
            wait_until(lambda: sink.stats.written == 600)
            sink.record_group(request_group(2))
            time.sleep(1.0)
            assert sink.stats.written == 600
            sink.record_group(request_group(2))  # 4 items, each pickled on its own
            wait_until(lambda: sink.stats.written == 604)
        finally:
            sink.close(timeout=60)
        assert sink.stats.lost == 0


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
from policy_engine.audit.writer import first_entries
from tests.integration.test_decision_log_groups import UNREACHABLE, batch_of
from tests.integration.test_decision_log import protector, wait_until

sink = DecisionLogProcess(UNREACHABLE, replica_id="orphan", spill_dir=Path(sys.argv[1]),
                          protector=protector(), queue_size=150)
sink.record_many(batch_of(100))
wait_until(lambda: sink._counters[_TAKEN] == 100)
sink.record_many(batch_of(100))  # the writer blocks on this group: its own queue is full
time.sleep(1)
print(sink.writer_pid, flush=True)
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


def request_group(count: int, *, denied_every: int = 7) -> DecisionGroup:
    """The decisions of one BatchCheck as the service hands them over: one subject attributes
    object shared, each item its own resource and context; every `denied_every`-th denied."""
    subject = MappingProxyType({"email": "carol@example.com", "clearance": 3})
    return DecisionGroup(
        id_prefix=uuid.uuid4().hex[:24],
        decided_at=datetime.now(UTC),
        policy_set="default",
        policy_version=3,
        tenant="acme",
        subject="alice",
        actor="rag_bot",
        caller="spiffe://acme/app",
        latency_us=42,
        attributes={"subject": subject, "actor": {}},
        items=[
            GroupItem(
                f"{n + 1:08x}", "invoke", f"tool:t{n}", n % denied_every != 0,
                "p, role:user, tool:*, invoke" if n % denied_every else "",
                "matched" if n % denied_every else "no rule matched", f"req-{n}",
                {"resource": {"classification": n % 4}, "context": {"turn": n}},
            )
            for n in range(count)
        ],
    )


def plain_group(count: int, *, plain: bool = True, denied_every: int = 7) -> DecisionGroup:
    """The decisions of one FilterAllowed as the service hands them over: the candidates carry no
    attributes of their own, so the items are PlainItems (`plain=False`: the same decisions as
    GroupItems)."""
    rows = [
        (f"{n + 1:08x}", "invoke", f"tool:t{n}", allowed, "p, role:user, tool:*, invoke" if allowed else "",
         "matched" if allowed else "subject 'alice' is not allowed: no rule allows it", "req-1", "")
        for n, allowed in ((n, (n + 1) % denied_every != 0) for n in range(count))
    ]
    return request_group(0)._replace(
        items=PlainItems(rows) if plain else [GroupItem(*row[:7], PLAIN_ITEM_ATTRIBUTES) for row in rows]
    )


def stored_group_row(engine: Engine, decision_id: str) -> tuple[str, bool, int]:
    with engine.connect() as conn:
        row = conn.execute(select(decision_log.c["items"], decision_log.c.allowed, decision_log.c.item_count)
                           .where(decision_log.c.decision_id == decision_id)).one()
    return row.items, bool(row.allowed), int(row.item_count)


def row_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(decision_log)) or 0)


class TestGroupRows:
    def test_a_group_is_one_row_read_back_decision_by_decision(self, engine: Engine, tmp_path: Path) -> None:
        """A request's 100 decisions are one row; each reads back by its id with its own fields,
        attributes and keyed hashes; counts, filters and the chain see decisions."""
        sink = open_log(engine, tmp_path / "spill", batch_size=500)
        group = request_group(100)
        sent = group.records()
        sink.record_group(group)
        sink.record(decision(500))
        sink.close(timeout=30)
        assert sink.stats.written == 101
        repository = DecisionLogRepository(engine)
        assert (row_count(engine), repository.count()) == (2, 101)
        for n in [*range(0, 100, 9), 99]:
            entry, stored = sent[n], repository.get(sent[n].decision_id)
            assert (stored.decision_id, stored.action, stored.resource, stored.allowed, stored.rule,
                    stored.reason, stored.request_id, stored.subject, stored.actor, stored.latency_us) == (
                entry.decision_id, "invoke", f"tool:t{n}", n % 7 != 0, entry.rule, entry.reason,
                f"req-{n}", "alice", "rag_bot", 42)
            attributes = AttributeProtector.item_attributes(
                protector().reveal(stored.attributes_ciphertext, stored.key_id), stored.item_index)
            assert attributes == {"subject": {"clearance": 3}, "actor": {},
                                  "resource": {"classification": n % 4}, "context": {"turn": n}}
            assert stored.hashed_attributes == {"subject.email": protector().hash_value("carol@example.com")}
        denied = [entry.decision_id for entry in sent if not entry.allowed]
        assert sorted(d.decision_id for d in repository.query(denied=True, limit=1000)) == sorted(denied)
        allowed = repository.query(denied=False, limit=1000)
        assert len(allowed) == 101 - len(denied) and all(d.allowed for d in allowed)
        assert len(repository.query(limit=30)) == 30
        with pytest.raises(NotFoundError):
            repository.get(group.id_prefix + "ffffffff")
        report = repository.verify()
        assert report.ok and report.rows_checked == 2, report.lines()

    def test_a_writer_batch_counts_rows_so_groups_share_a_commit(self, engine: Engine, tmp_path: Path) -> None:
        """batch_size is rows: thirty requests of 100 decisions (3,000 decisions) with batch_size
        10 are three transactions of ten group rows, not one commit per request."""
        commits: list[object] = []

        def committed(connection: object) -> None:
            commits.append(connection)

        event.listen(engine, "commit", committed)
        try:
            sink = open_log(engine, tmp_path / "spill", batch_size=10, flush_interval=30.0)
            for _ in range(30):
                sink.record_group(request_group(100))
            sink.close(timeout=30)
        finally:
            event.remove(engine, "commit", committed)
        assert sink.stats.written == 3000 and row_count(engine) == 30
        assert len(commits) == 3
        assert DecisionLogRepository(engine).verify().ok

    def test_the_writer_does_not_gather_while_the_queue_fills(self, engine: Engine, tmp_path: Path) -> None:
        """Large groups fill the queue's bound (decisions) long before batch_size rows: the writer
        writes once half the queue is taken, instead of gathering until the queue refuses."""
        sink = open_log(engine, tmp_path / "spill", batch_size=500, flush_interval=30.0, queue_size=1000)
        try:
            for _ in range(5):
                sink.record_group(request_group(100))
            wait_until(lambda: sink.stats.written == 500, timeout=10)
            for _ in range(5):
                sink.record_group(request_group(100))
            wait_until(lambda: sink.stats.written == 1000, timeout=10)
        finally:
            sink.close(timeout=30)
        assert sink.stats.lost == 0

    def test_groups_larger_than_a_writer_batch_stay_whole(self, engine: Engine, tmp_path: Path) -> None:
        """A group is never split across rows, even when it is larger than the writer's batch."""
        sink = open_log(engine, tmp_path / "spill", batch_size=64)
        groups = [request_group(150), request_group(30), request_group(40)]
        for group in groups:
            sink.record_group(group)
        sink.close(timeout=30)
        repository = DecisionLogRepository(engine)
        assert row_count(engine) == 3 and repository.count() == 220
        sent = [entry for group in groups for entry in group.records()]
        assert [repository.get(e.decision_id).resource for e in sent] == [e.resource for e in sent]
        assert repository.verify().ok

    def test_a_group_that_does_not_fit_keeps_what_fits(self, sqlite_url: str, tmp_path: Path) -> None:
        """Under the default policy a group's items beyond the queue's room are counted lost; under
        fail_closed the whole group is refused."""
        engine = create_engine(sqlite_url.replace("policy-engine.db", "missing/dir/x.db"))
        sink = open_log(engine, tmp_path / "spill", queue_size=150)
        sink.record_group(request_group(100))
        sink.record_group(request_group(100))
        assert (sink.stats.lost, sink.stats.queued) == (50, 150)
        sink.close(timeout=1)
        strict = open_log(engine, tmp_path / "spill2", queue_size=150, on_loss="fail_closed")
        strict.record_group(request_group(100))
        with pytest.raises(AuditUnavailableError):
            strict.record_group(request_group(100))
        assert (strict.stats.lost, strict.stats.queued) == (100, 100)
        strict.close(timeout=1)

    def test_an_edited_item_fails_verification(self, engine: Engine, tmp_path: Path) -> None:
        """Changing one item's outcome inside a group row breaks that row's hash."""
        sink = open_log(engine, tmp_path / "spill")
        sink.record_group(request_group(20))
        sink.close(timeout=30)
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("ALTER TABLE decision_log DISABLE TRIGGER decision_log_immutable")
                conn.exec_driver_sql("UPDATE decision_log SET items = replace(items, 'false', 'true')")
                conn.exec_driver_sql("ALTER TABLE decision_log ENABLE TRIGGER decision_log_immutable")
            else:
                conn.exec_driver_sql("DROP TRIGGER decision_log_no_update")
                conn.exec_driver_sql("UPDATE decision_log SET items = replace(items, 'false', 'true')")
        report = DecisionLogRepository(engine).verify()
        assert not report.ok and report.replicas[0].problem.kind == "edited", report.lines()

    def test_groups_survive_an_outage_through_the_spill_file(self, outage: Outage, tmp_path: Path) -> None:
        """Group rows spilled while the database is cut are replayed once it is back, each decision once."""
        sink = open_log(outage.engine, tmp_path / "spill", batch_size=100)
        sink.record_group(request_group(100))
        wait_until(lambda: sink.stats.written == 100)
        outage.cut()
        during = [request_group(120), request_group(130)]
        for group in during:
            sink.record_group(group)
        wait_until(lambda: sink.stats.spilled == 250)
        outage.restore()
        wait_until(lambda: sink.stats.replayed == 250 and not sink.stats.spill_pending, timeout=60)
        sink.close(timeout=30)
        repository = DecisionLogRepository(outage.direct)
        assert repository.count() == 350 and sink.stats.lost == 0
        last = during[-1].records()[-1]
        assert repository.get(last.decision_id).resource == last.resource
        assert repository.verify().ok

    def test_writer_process_keeps_groups_and_records_in_order(self, database_url: str, engine: Engine,
                                                               tmp_path: Path) -> None:
        """Through the writer process (pickled across), groups stay one row each, between the
        single records handed over before and after them."""
        sink = open_process(database_url, tmp_path / "spill")
        first, second = request_group(200), request_group(3)
        sink.record(decision(1))
        sink.record_group(first)
        sink.record_many([decision(2), decision(3)])
        sink.record_group(second)
        sink.close(timeout=60)
        assert (sink.stats.written, sink.stats.lost) == (206, 0)
        assert row_count(engine) == 5
        with engine.connect() as conn:
            counts = list(conn.scalars(select(decision_log.c.item_count).order_by(decision_log.c.seq)))
        assert counts == [1, 200, 1, 1, 3]
        entry = first.records()[123]
        assert DecisionLogRepository(engine).get(entry.decision_id).resource == entry.resource

    @pytest.mark.parametrize("through", ["thread", "process"])
    def test_plain_items_are_stored_as_the_same_decisions_would_be_as_group_items(
        self, through: str, database_url: str, engine: Engine, tmp_path: Path
    ) -> None:
        """A FilterAllowed's items without attributes cross and are stored as one encoded text;
        what reads back (fields, attributes, hashes, the row's allowed and count) equals what the
        same decisions handed over as GroupItems give."""
        if through == "thread":
            sink = open_log(engine, tmp_path / "spill")
        else:
            sink = open_process(database_url, tmp_path / "spill")
        plain, generic = plain_group(120), plain_group(120, plain=False)
        all_allowed = plain_group(5, denied_every=1000)
        for group in (plain, generic, all_allowed):
            sink.record_group(group)
        sink.close(timeout=60)
        assert (sink.stats.written, sink.stats.lost) == (245, 0)
        repository = DecisionLogRepository(engine)
        keys = protector()
        for expected, group in zip(generic.records(), plain.records(), strict=True):
            stored = repository.get(group.decision_id)
            twin = repository.get(expected.decision_id)
            assert (stored.action, stored.resource, stored.allowed, stored.rule, stored.reason,
                    stored.request_id, stored.hashed_attributes) == (
                twin.action, twin.resource, twin.allowed, twin.rule, twin.reason, twin.request_id,
                twin.hashed_attributes)
            assert stored.resource == group.resource and stored.allowed == group.allowed
            revealed = AttributeProtector.item_attributes(
                keys.reveal(stored.attributes_ciphertext, stored.key_id), stored.item_index)
            assert revealed == AttributeProtector.item_attributes(
                keys.reveal(twin.attributes_ciphertext, twin.key_id), twin.item_index)
            assert revealed == {"subject": {"clearance": 3}, "actor": {}, "resource": {}, "context": {}}
        plain_row = stored_group_row(engine, plain.id_prefix + "00000001")
        generic_row = stored_group_row(engine, generic.id_prefix + "00000001")
        assert json.loads(plain_row[0]) == json.loads(generic_row[0])
        assert plain_row[1:] == generic_row[1:] == (False, 120)
        assert stored_group_row(engine, all_allowed.id_prefix + "00000001")[1:] == (True, 5)
        assert repository.verify().ok

    def test_plain_items_cut_to_what_fits_are_stored_as_themselves(self, engine: Engine, tmp_path: Path) -> None:
        """When a queue has room for part of a group (the default loss policy), the first items
        of PlainItems are kept as PlainItems and stored as those decisions."""
        group = plain_group(100)
        kept = first_entries(group, 40)
        assert type(kept.items) is PlainItems and len(kept.items) == 40
        sink = open_log(engine, tmp_path / "spill")
        sink.record_group(kept)
        sink.close(timeout=30)
        repository = DecisionLogRepository(engine)
        assert repository.count() == 40
        sent = group.records()
        assert [repository.get(entry.decision_id).resource for entry in sent[:40]] == [f"tool:t{n}" for n in range(40)]
        with pytest.raises(NotFoundError):
            repository.get(sent[40].decision_id)
        assert repository.verify().ok

    def test_downgrade_below_groups_is_refused_while_group_rows_exist(self, engine: Engine,
                                                                       tmp_path: Path) -> None:
        """Migration 0006 does not drop stored group rows: its downgrade refuses and changes nothing."""
        sink = open_log(engine, tmp_path / "spill")
        sink.record_group(request_group(10))
        sink.close(timeout=30)
        with pytest.raises(RuntimeError, match="group rows"):
            downgrade(engine, "0005")
        assert DecisionLogRepository(engine).count() == 10


@pytest.mark.parametrize(("priority", "policy"), [("idle", os.SCHED_IDLE), ("normal", os.SCHED_OTHER)])
def test_the_writer_process_runs_at_the_priority_asked(
    priority: str, policy: int, database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """With "idle" the writer process takes only CPU time nothing else wants (SCHED_IDLE);
    "normal", the default, leaves it at the usual policy. It writes either way."""
    sink = open_process(database_url, tmp_path / "spill", priority=priority)
    try:
        sink.record(decision(1))
        wait_until(lambda: sink.stats.written == 1)
        assert sink.writer_pid is not None
        assert os.sched_getscheduler(sink.writer_pid) == policy
    finally:
        sink.close(timeout=5)
    assert DecisionLogRepository(engine).count() == 1


def test_an_unknown_writer_priority_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="priority must be one of"):
        open_process(UNREACHABLE, tmp_path / "spill", priority="high")
