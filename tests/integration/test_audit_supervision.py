"""A decision log that cannot silently stop: the writer process is supervised (killed, it is
replaced and nothing answered is lost or stored twice), health says NOT_SERVING while no writer
can run, and a hung database spills instead of holding entries in memory."""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import Engine, create_engine, delete, func, select

from policy_engine.audit import AuditUnavailableError, DecisionLog
from policy_engine.audit.process import DecisionLogProcess
from policy_engine.audit.writer import Takeover
from policy_engine.cli import policyctl
from policy_engine.config import AuditSettings
from policy_engine.store import ensure_schema, open_database
from policy_engine.store.audit_tables import decision_log
from policy_engine.store.decision_log import CrashGap, DecisionLogRepository, gap_row
from policy_engine.testing import running_server
from policy_engine.v1 import authorization_pb2, authorization_pb2_grpc, types_pb2
from tests.integration.test_decision_log import decision, protector, wait_until
from tests.integration.test_decision_log_groups import batch_of, request_group
from tests.support.processes import admin_token_file, serve_process
from tests.support.tcp_proxy import TcpProxy

ROOT = Path(__file__).resolve().parents[2]
AUTHORIZATION = "policy_engine.v1.AuthorizationService"


def writer_pids(parent: int) -> set[int]:
    """The decision-log writer processes of process `parent`: its spawned children holding a
    spill file's lock (a standby writer holds none)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == parent and fields[0] != "Z" and b"spawn_main" in cmdline and _holds_spill_lock(entry):
            found.add(int(entry.name))
    return found


def _holds_spill_lock(process: Path) -> bool:
    try:
        return any(os.readlink(fd).endswith(".spill.lock") for fd in (process / "fd").iterdir())
    except OSError:
        return False


def open_sink(url: str, spill_dir: Path, **options) -> DecisionLogProcess:  # type: ignore[no-untyped-def]
    settings = {"replica_id": "replica-s", "spill_dir": spill_dir, "protector": protector(), "queue_size": 20_000}
    settings.update(options)
    return DecisionLogProcess(url, **settings)


def stored_ids(engine: Engine) -> list[str]:
    return [d.decision_id for d in DecisionLogRepository(engine).query(limit=100_000)]


@contextmanager
def no_writer_can_start(writer: int, spill_dir: Path) -> Iterator[None]:
    """Kill the writer process `writer` with its spill directory replaced by a file, so that no
    writer can open its spill file, until the block ends (the directory is then put back)."""
    away = spill_dir.with_name(spill_dir.name + ".away")
    spill_dir.rename(away)
    spill_dir.write_text("not a directory")
    os.kill(writer, signal.SIGKILL)
    try:
        yield
    finally:
        spill_dir.unlink()
        away.rename(spill_dir)


class TestSupervisedWriter:
    def test_a_killed_writer_is_replaced_and_every_entry_is_stored_once(
        self, database_url: str, engine: Engine, tmp_path: Path
    ) -> None:
        """kill -9 of the writer process, three times while entries flow: a new writer takes
        over each time, every entry handed over is stored exactly once, and the chain verifies."""
        sink = open_sink(database_url, tmp_path / "spill")
        sent: list[str] = []
        try:
            for round_ in range(3):
                for n in range(20):
                    records = batch_of(25, start=n * 25)
                    sink.record_many(records)
                    sent += [r.decision_id for r in records]
                    group = request_group(40)
                    sink.record_group(group)
                    sent += [group.id_prefix + item.id_suffix for item in group.items]
                    if n == 10:
                        killed = sink.writer_pid
                        assert killed is not None
                        os.kill(killed, signal.SIGKILL)
                wait_until(lambda: sink.writer_pid != killed and sink.available, timeout=30)
            sink.record(entry := decision(1))
            sent.append(entry.decision_id)
        finally:
            sink.close(timeout=30)
        stored = stored_ids(engine)
        assert len(stored) == len(set(stored)) == len(sent)
        assert set(stored) == set(sent)
        assert sink.stats.lost == 0
        report = DecisionLogRepository(engine).verify()
        assert report.ok, report.lines()

    def test_entries_a_dead_writer_held_are_resent_after_a_recorded_crash_gap(self, tmp_path: Path) -> None:
        """The writer is killed in the middle of an insert the database is slow to take: its
        batch's sequence numbers are recorded as a crash gap, its entries (held unfinished by the
        serving side) are stored by the next writer, and verify passes naming the gap."""
        url = f"sqlite:///{tmp_path / 'log.db'}"
        engine = open_database(url)
        ensure_schema(engine, url)
        sink = open_sink(url, tmp_path / "spill")
        sent: list[str] = []
        try:
            sink.record(first := decision(0))
            sent.append(first.decision_id)
            wait_until(lambda: sink.stats.written == 1)
            holder = sqlite3.connect(tmp_path / "log.db", isolation_level=None)
            holder.execute("BEGIN EXCLUSIVE")  # the writer's next insert waits for this lock
            try:
                records = batch_of(300)
                sink.record_many(records)
                sent += [r.decision_id for r in records]
                position = tmp_path / "spill" / "replica-s.position"
                wait_until(lambda: '"first_in_doubt": 2' in position.read_text(), timeout=10)
                killed = sink.writer_pid
                assert killed is not None
                os.kill(killed, signal.SIGKILL)
            finally:
                holder.execute("ROLLBACK")
                holder.close()
            wait_until(lambda: sink.writer_pid != killed and sink.stats.written >= 301, timeout=30)
        finally:
            sink.close(timeout=30)
        stored = stored_ids(engine)
        assert sorted(stored) == sorted(sent)
        report = DecisionLogRepository(engine).verify()
        assert report.ok, report.lines()
        (gap,) = report.replicas[0].crash_gaps
        assert (gap.first, gap.last, gap.decisions, gap.resent) == (2, 301, 300, True)
        assert any("crash gap: seq 2..301 never stored" in line for line in report.lines()), report.lines()
        assert report.replicas[0].last_seq == 602  # 1, the gap 2..301, its record, the 300 again

    def test_a_writer_taking_over_does_not_store_again_what_the_dead_one_stored(
        self, engine: Engine, tmp_path: Path
    ) -> None:
        """Entries re-sent to a new writer that the dead one had stored after its last
        acknowledgement are recognised by decision id and skipped; the rest are stored."""
        entries = [decision(n) for n in range(10)]
        group = request_group(5)
        first = DecisionLog(engine, replica_id="r", spill_dir=tmp_path / "spill", protector=protector())
        first.record_many(entries)
        first.record_group(group)
        first.close(timeout=30)
        fresh = [decision(n) for n in range(10, 13)]
        second = DecisionLog(engine, replica_id="r", spill_dir=tmp_path / "spill", protector=protector(),
                             takeover=Takeover(after_seq=4, resent=6 + 5))
        second.record_many(entries[4:])  # seq 5..10 stored: skipped
        second.record_group(group)  # seq 11 stored: skipped
        second.record_many(fresh)
        second.close(timeout=30)
        stored = stored_ids(engine)
        assert sorted(stored) == sorted(
            [e.decision_id for e in entries + fresh] + [group.id_prefix + i.id_suffix for i in group.items]
        )
        assert DecisionLogRepository(engine).verify().ok

    @pytest.mark.parametrize("on_loss", ["count", "fail_closed"])
    def test_while_no_writer_can_start_the_log_is_unavailable(self, on_loss: str, sqlite_url: str,
                                                              tmp_path: Path) -> None:
        """With no writer able to start, the sink reports unavailable (fail_closed refuses
        entries, count keeps them queued); once one can start, it takes over with the queue."""
        engine = open_database(sqlite_url)
        ensure_schema(engine, sqlite_url)
        spill = tmp_path / "spill"
        sink = open_sink(sqlite_url, spill, on_loss=on_loss)
        kept: list[str] = []
        try:
            sink.record(entry := decision(0))
            kept.append(entry.decision_id)
            wait_until(lambda: sink.stats.written == 1)
            assert sink.writer_pid is not None
            with no_writer_can_start(sink.writer_pid, spill):
                wait_until(lambda: not sink.available, timeout=30)
                if on_loss == "fail_closed":
                    with pytest.raises(AuditUnavailableError, match="cannot be started"):
                        sink.record(decision(1))
                else:
                    sink.record(entry := decision(1))
                    kept.append(entry.decision_id)
            wait_until(lambda: sink.available, timeout=30)
            sink.record(entry := decision(2))
            kept.append(entry.decision_id)
        finally:
            sink.close(timeout=30)
        assert sorted(stored_ids(engine)) == sorted(kept)


def check(n: int) -> authorization_pb2.CheckRequest:
    return authorization_pb2.CheckRequest(
        tenant="acme", subject=types_pb2.Entity(id="dave"), action="invoke",
        resource=types_pb2.Resource(kind="tool", id="web_search"), request_id=f"r{n}",
    )


def batch(n: int) -> authorization_pb2.BatchCheckRequest:
    return authorization_pb2.BatchCheckRequest(
        tenant="acme", subject=types_pb2.Entity(id="dave"),
        items=[authorization_pb2.BatchCheckItem(action="invoke", resource=types_pb2.Resource(kind="tool", id=tool),
                                                request_id=f"b{n}-{tool}")
               for tool in ("web_search", "sql_query", "shell_exec")],
    )


class Traffic:
    """Checks and BatchChecks in a thread until stopped; the decision ids of every answer."""

    def __init__(self, target: str) -> None:
        wait_until(lambda: health(target) == health_pb2.HealthCheckResponse.SERVING)
        self.answered: list[str] = []
        self.refused: list[grpc.StatusCode] = []
        self._stop = threading.Event()
        self._channel = grpc.insecure_channel(target)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        stub = authorization_pb2_grpc.AuthorizationServiceStub(self._channel)
        n = 0
        while not self._stop.is_set():
            n += 1
            time.sleep(0.003)  # under the per-subject rate limit (500/s)
            try:
                if n % 5:
                    self.answered.append(stub.Check(check(n), timeout=30).decision_id)
                else:
                    self.answered += [r.decision_id for r in stub.BatchCheck(batch(n), timeout=30).results]
            except grpc.RpcError as exc:
                self.refused.append(exc.code())
                time.sleep(0.01)

    def wait_for(self, more: int, timeout: float = 60) -> None:
        goal = len(self.answered) + more
        wait_until(lambda: len(self.answered) >= goal, timeout=timeout)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)
        self._channel.close()


def health(target: str, service: str = "") -> int | None:
    with grpc.insecure_channel(target) as channel:
        try:
            return health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=2).status
        except grpc.RpcError:
            return None


def test_killing_the_writer_under_traffic_loses_no_answered_decision(postgres_url: str, tmp_path: Path) -> None:
    """kill -9 of a real server's writer process while Checks and BatchChecks flow: a new
    writer takes over, every answered decision is in the log once, and verify passes."""
    engine = open_database(postgres_url)
    ensure_schema(engine, postgres_url)
    audit = AuditSettings(spill_dir=tmp_path / "audit", writer="process")
    with running_server(ROOT / "policies", db_url=postgres_url, audit=audit) as server:
        wait_until(lambda: len(writer_pids(os.getpid())) == 1)
        (first,) = writer_pids(os.getpid())
        traffic = Traffic(server.target)
        try:
            traffic.wait_for(300)
            os.kill(first, signal.SIGKILL)
            wait_until(lambda: len(writer_pids(os.getpid()) - {first}) == 1, timeout=30)
            traffic.wait_for(300)
            assert health(server.target, AUTHORIZATION) == health_pb2.HealthCheckResponse.SERVING
        finally:
            traffic.stop()
    assert not traffic.refused
    stored = stored_ids(engine)
    assert len(stored) == len(set(stored)) == len(traffic.answered)
    assert set(stored) == set(traffic.answered)
    report = DecisionLogRepository(engine).verify()
    assert report.ok, report.lines()
    engine.dispose()


def test_health_is_not_serving_while_no_writer_can_start(sqlite_url: str, tmp_path: Path) -> None:
    """Under fail_closed, with the writer killed and no new one able to start, the server
    reports NOT_SERVING (the whole server and the authorization service) instead of taking
    traffic it refuses; once a writer can start it is SERVING and answers again."""
    spill = tmp_path / "audit"
    audit = AuditSettings(spill_dir=spill, writer="process", on_loss="fail_closed")
    with running_server(ROOT / "policies", db_url=sqlite_url, audit=audit) as server:
        wait_until(lambda: health(server.target) == health_pb2.HealthCheckResponse.SERVING)
        wait_until(lambda: len(writer_pids(os.getpid())) == 1)
        (writer,) = writer_pids(os.getpid())
        with grpc.insecure_channel(server.target) as channel:
            stub = authorization_pb2_grpc.AuthorizationServiceStub(channel)
            stub.Check(check(0), timeout=10)
            with no_writer_can_start(writer, spill):
                for service in ("", AUTHORIZATION):
                    wait_until(lambda: health(server.target, service) == health_pb2.HealthCheckResponse.NOT_SERVING)
                with pytest.raises(grpc.RpcError) as refused:
                    stub.Check(check(1), timeout=10)
                assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            wait_until(lambda: health(server.target) == health_pb2.HealthCheckResponse.SERVING)
            assert stub.Check(check(2), timeout=10).decision_id


def test_a_hung_postgres_spills_within_seconds_and_replays_exactly_once(postgres_url: str, tmp_path: Path) -> None:
    """The database stops answering with every connection left open (a hung proxy) while
    decisions flow: the writer's deadline turns the hang into an outage, entries spill within
    seconds, and after recovery every answered decision is in the log once, none lost."""
    engine = open_database(postgres_url)
    ensure_schema(engine, postgres_url)
    proxy = TcpProxy(("127.0.0.1", 5432))
    proxy.start()
    url = postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    spill = tmp_path / "audit"
    audit = AuditSettings(spill_dir=spill, writer="process")
    try:
        with running_server(ROOT / "policies", db_url=url, audit=audit) as server:
            traffic = Traffic(server.target)
            try:
                traffic.wait_for(200)
                # stored once: the writer knows where its chain goes on (a replica that never
                # reached the database waits for it rather than guess)
                wait_until(lambda: DecisionLogRepository(engine).count() > 0)
                proxy.hang()
                wait_until(lambda: any(f.stat().st_size for f in spill.glob("*.spill")), timeout=20)
                traffic.wait_for(300)
                proxy.resume()
                wait_until(lambda: not any(f.stat().st_size for f in spill.glob("*.spill")), timeout=60)
                traffic.wait_for(100)
            finally:
                traffic.stop()
                proxy.resume()
    finally:
        proxy.close()
    assert not traffic.refused
    stored = stored_ids(engine)
    assert len(stored) == len(set(stored)) == len(traffic.answered)
    assert set(stored) == set(traffic.answered)
    report = DecisionLogRepository(engine).verify()
    assert report.ok, report.lines()
    engine.dispose()


def test_a_locked_sqlite_spills_within_seconds_and_replays_exactly_once(sqlite_url: str, tmp_path: Path) -> None:
    """SQLite held under another writer's lock while decisions flow: the writer stops waiting
    at its deadline and spills; once the lock is gone every decision is in the log once."""
    spill = tmp_path / "audit"
    audit = AuditSettings(spill_dir=spill, writer="process")
    with running_server(ROOT / "policies", db_url=sqlite_url, audit=audit) as server:
        traffic = Traffic(server.target)
        holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None,
                                 check_same_thread=False)
        try:
            traffic.wait_for(200)
            wait_until(lambda: DecisionLogRepository(open_database(sqlite_url)).count() > 0)
            holder.execute("BEGIN EXCLUSIVE")
            wait_until(lambda: any(f.stat().st_size for f in spill.glob("*.spill")), timeout=20)
            traffic.wait_for(200)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        try:
            wait_until(lambda: not any(f.stat().st_size for f in spill.glob("*.spill")), timeout=60)
            traffic.wait_for(100)
        finally:
            traffic.stop()
        engine = open_database(sqlite_url)
    assert not traffic.refused
    stored = stored_ids(engine)
    assert len(stored) == len(set(stored)) == len(traffic.answered)
    assert set(stored) == set(traffic.answered)
    assert DecisionLogRepository(engine).verify().ok
    engine.dispose()




@dataclass
class SlowDatabase:
    """A real database the test can make stop answering (and answer again)."""

    url: str  # what the server uses
    direct: Engine  # the test's: always answers
    stall: Callable[[], None]
    recover: Callable[[], None]


@pytest.fixture(params=["postgres", "sqlite"])
def slow_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SlowDatabase]:
    """PostgreSQL behind a proxy that hangs (connections open, nothing forwarded); SQLite under
    another writer's exclusive lock."""
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        direct = open_database(url)
        ensure_schema(direct, url)
        proxy = TcpProxy(("127.0.0.1", 5432))
        proxy.start()


        def recover() -> None:
            # the connections that hung are cut, what they held never arrives (a client that
            # died meanwhile committed nothing); new connections go through
            proxy.stop()
            proxy.resume()
            proxy.start()

        yield SlowDatabase(url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"), direct, proxy.hang, recover)
        proxy.close()
    else:
        url = f"sqlite:///{tmp_path / 'slow.db'}"
        ensure_schema(open_database(url), url)
        direct = create_engine(url)  # reads without BEGIN IMMEDIATE: not blocked by the lock
        holder = sqlite3.connect(tmp_path / "slow.db", isolation_level=None, check_same_thread=False)
        yield SlowDatabase(url, direct, lambda: holder.execute("BEGIN EXCLUSIVE"),
                           lambda: holder.execute("ROLLBACK") if holder.in_transaction else None)
        holder.close()
    direct.dispose()


def test_a_crash_while_the_database_is_slow_is_a_named_gap_and_tampering_still_shows(
    slow_database: SlowDatabase, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """kill -9 of a real server and its writer while the writer's insert waits on a slow
    database: after a restart, verify passes naming the crash gap (entries lost in a crash)
    and checks every later row; a row deleted afterwards is still reported as tampering."""
    monkeypatch.setenv("POLICY_ENGINE_REPLICA_ID", "crash-replica")
    repository = DecisionLogRepository(slow_database.direct)
    position_file = tmp_path / "var" / "audit" / "crash-replica.position"

    def in_doubt() -> int | None:
        """The last seq of a batch sent to the database and not stored there yet."""
        try:
            saved = json.loads(position_file.read_text())
        except (OSError, ValueError):
            return None
        stored = repository.position("crash-replica")
        if saved.get("first_in_doubt") is None or (stored is not None and stored.seq >= saved["seq"]):
            return None
        return int(saved["seq"])

    with serve_process(slow_database.url, ROOT / "policies", tmp_path) as (target, server):
        traffic = Traffic(target)
        try:
            traffic.wait_for(200)
            wait_until(lambda: repository.count() > 0)
            slow_database.stall()
            try:
                wait_until(lambda: in_doubt() is not None, timeout=20)
                (writer,) = writer_pids(server.pid)
                os.kill(writer, signal.SIGKILL)
                os.kill(server.pid, signal.SIGKILL)
            finally:
                slow_database.recover()
        finally:
            traffic.stop()
        server.wait(10)
    lost_at = in_doubt()
    assert lost_at is not None
    with serve_process(slow_database.url, ROOT / "policies", tmp_path) as (target, _server):
        traffic = Traffic(target)
        try:
            traffic.wait_for(200)
        finally:
            traffic.stop()
        # the restarted writer has stored its crash record and rows after it
        wait_until(lambda: getattr(repository.position("crash-replica"), "seq", 0) > lost_at + 1)
        out, err = io.StringIO(), io.StringIO()
        code = policyctl.run(["decisions", "verify", "--server", target,
                              "--token-file", str(admin_token_file(tmp_path))], out, err)
        assert code == 0 and "1 crash gap (see above)" in out.getvalue(), out.getvalue() + err.getvalue()
    report = repository.verify()
    assert report.ok, report.lines()
    (chain,) = report.replicas
    (gap,) = chain.crash_gaps
    assert gap.last == lost_at and not gap.resent
    assert any("entries lost in a crash at" in line for line in report.lines()), report.lines()
    rows = _rows(slow_database.direct)
    assert chain.rows_checked == rows and chain.last_seq == rows + gap.rows  # every row after the gap checked

    with slow_database.direct.begin() as conn:
        conn.execute(delete(decision_log).where(decision_log.c.seq == chain.last_seq - 3))
    report = repository.verify()
    assert not report.ok
    (chain,) = report.replicas
    assert chain.problem is not None and (chain.problem.kind, chain.problem.seq) == ("gap", chain.last_seq - 3)
    assert len(chain.crash_gaps) == 1 and chain.rows_checked == rows - 1


def _rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(decision_log)) or 0)


def test_rows_deleted_from_a_batch_a_crash_record_names_are_tampering(engine: Engine, tmp_path: Path) -> None:
    """A crash record explains its batch missing whole; its rows all present verify as usual,
    and some of them deleted is tampering (a batch is stored whole or not at all)."""
    log = DecisionLog(engine, replica_id="r", spill_dir=tmp_path / "spill", protector=protector())
    log.record_many([decision(n) for n in range(10)])
    log.close(timeout=30)
    repository = DecisionLogRepository(engine)
    tenth = repository.position("r")
    assert tenth is not None and tenth.seq == 10
    gap = CrashGap(6, 10, 5, datetime.now(UTC), resent=False)
    repository.insert_rows([gap_row("r", 11, tenth.hash, gap, datetime.now(UTC))])
    report = repository.verify()
    assert report.ok and report.replicas[0].crash_gaps == () and report.replicas[0].rows_checked == 11
    assert repository.count() == 10  # the record holds no decision
    with engine.begin() as conn:
        conn.execute(delete(decision_log).where(decision_log.c.seq >= 8, decision_log.c.seq <= 10))
    report = repository.verify()
    problem = report.replicas[0].problem
    assert problem is not None and (problem.kind, problem.seq) == ("gap", 8), report.lines()
