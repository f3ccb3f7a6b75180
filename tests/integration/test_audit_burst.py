"""Every decision made through the server is in the decision log exactly once, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
import sqlalchemy.exc

from policy_engine.config import AuditSettings
from policy_engine.metrics import METRICS
from policy_engine.store import ensure_schema, open_database
from policy_engine.store.decision_log import DecisionLogRepository
from policy_engine.testing import running_server
from policy_engine.v1 import authorization_pb2, authorization_pb2_grpc, types_pb2

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ("web_search", "sql_query", "shell_exec", "email_send", "calculator")


@pytest.mark.parametrize("writer", ["process", "thread"])
def test_ten_thousand_decisions_each_logged_once(database_url: str, writer: str, tmp_path: Path) -> None:
    """10,000 decisions (10 batches of 1,000 items) leave 10,000 distinct entries and an intact chain."""
    engine = open_database(database_url)
    ensure_schema(engine, database_url)
    decision_ids: list[str] = []
    audit = AuditSettings(spill_dir=tmp_path / "audit", writer=writer)
    with running_server(ROOT / "policies", db_url=database_url, audit=audit) as server, grpc.insecure_channel(server.target) as ch:
        stub = authorization_pb2_grpc.AuthorizationServiceStub(ch)
        for batch in range(10):
            items = [
                authorization_pb2.BatchCheckItem(
                    action="invoke",
                    resource=types_pb2.Resource(kind="tool", id=TOOLS[i % len(TOOLS)]),
                    request_id=f"b{batch}-{i}",
                )
                for i in range(1000)
            ]
            response = stub.BatchCheck(
                authorization_pb2.BatchCheckRequest(tenant="acme", subject=types_pb2.Entity(id="carol"), items=items),
                timeout=30,
            )
            decision_ids += [r.decision_id for r in response.results]
    # the server drained its log on stop: everything is in the database now
    repository = DecisionLogRepository(engine)
    assert len(set(decision_ids)) == 10_000
    assert repository.count() == 10_000
    assert {d.decision_id for d in repository.query(limit=10_000)} == set(decision_ids)
    assert repository.verify().ok
    engine.dispose()


def _batch_request(index: int, size: int) -> authorization_pb2.BatchCheckRequest:
    items = [
        authorization_pb2.BatchCheckItem(
            action="invoke",
            resource=types_pb2.Resource(kind="tool", id=TOOLS[i % len(TOOLS)]),
            request_id=f"b{index}-{i}",
        )
        for i in range(size)
    ]
    return authorization_pb2.BatchCheckRequest(tenant="acme", subject=types_pb2.Entity(id="carol"), items=items)


def _send_while_locked(
    server_target: str, db_path: Path, batches: int, size: int, locked_for: float
) -> tuple[int, list[str]]:
    """Hold the SQLite database locked (the decision log's writer cannot insert), send `batches`
    BatchChecks at once, and release the lock after `locked_for` seconds. Returns how many
    requests had been answered when the lock was released, and every decision id answered."""
    answered: list[list[str]] = []
    with grpc.insecure_channel(server_target) as ch:
        stub = authorization_pb2_grpc.AuthorizationServiceStub(ch)
        stub.Check(
            authorization_pb2.CheckRequest(
                tenant="acme", subject=types_pb2.Entity(id="carol"), action="invoke",
                resource=types_pb2.Resource(kind="tool", id="web_search"),
            ),
            timeout=10,
        )
        lock = sqlite3.connect(db_path, isolation_level=None, timeout=30)
        lock.execute("BEGIN EXCLUSIVE")
        try:
            with ThreadPoolExecutor(batches) as pool:
                futures = [pool.submit(stub.BatchCheck, _batch_request(i, size), timeout=60) for i in range(batches)]
                time.sleep(locked_for)
                before_release = sum(future.done() for future in futures)
                lock.execute("ROLLBACK")
                answered = [[r.decision_id for r in future.result().results] for future in futures]
        finally:
            lock.close()
    return before_release, [decision_id for ids in answered for decision_id in ids]


@pytest.mark.parametrize("writer", ["process", "thread"])
def test_a_writer_that_falls_behind_slows_requests_instead_of_losing_entries(writer: str, tmp_path: Path) -> None:
    """With the writer stuck (database locked) and the queue full, requests wait for room; once
    the writer moves again every decision answered is in the log."""
    db_path = tmp_path / "log.db"
    url = f"sqlite:///{db_path}"
    audit = AuditSettings(spill_dir=tmp_path / "audit", writer=writer, queue_size=50, max_wait_seconds=30)
    waited = _waits("room")
    with running_server(ROOT / "policies", db_url=url, audit=audit) as server:
        _wait_for_rows(url, 0)
        before_release, decision_ids = _send_while_locked(server.target, db_path, batches=8, size=40, locked_for=1.5)
    assert before_release < 8  # held back, not answered with their entries dropped
    assert _waits("room") > waited  # and the wait shows in the metrics
    assert len(decision_ids) == 320
    engine = open_database(url)
    repository = DecisionLogRepository(engine)
    assert repository.count() == 321
    assert set(decision_ids) <= {d.decision_id for d in repository.query(limit=1000)}
    assert repository.verify().ok
    engine.dispose()


def test_the_wait_for_room_is_bounded_then_the_loss_policy_applies(tmp_path: Path) -> None:
    """audit.max_wait_seconds bounds the backpressure: past it requests are decided anyway, and
    under the default policy the entries that did not fit are counted lost, not kept."""
    db_path = tmp_path / "log.db"
    url = f"sqlite:///{db_path}"
    audit = AuditSettings(spill_dir=tmp_path / "audit", writer="thread", queue_size=50, max_wait_seconds=0.2)
    timed_out = _waits("timed_out")
    with running_server(ROOT / "policies", db_url=url, audit=audit) as server:
        before_release, decision_ids = _send_while_locked(server.target, db_path, batches=8, size=40, locked_for=3.0)
    assert before_release == 8  # none waited for the lock to go
    assert _waits("timed_out") > timed_out
    assert len(decision_ids) == 320
    engine = open_database(url)
    assert DecisionLogRepository(engine).count() < 321
    engine.dispose()


def _waits(outcome: str) -> float:
    """Requests of this process that waited for decision log room, by outcome (the test servers
    run in-process)."""
    return sum(
        sample.value
        for metric in METRICS.audit_waits.collect()
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.labels.get("outcome") == outcome
    )


def _wait_for_rows(url: str, at_least: int) -> None:
    """Until the server has created its schema (and holds `at_least` rows)."""
    engine = open_database(url)
    deadline = time.monotonic() + 10
    try:
        while time.monotonic() < deadline:
            try:
                if DecisionLogRepository(engine).count() >= at_least:
                    return
            except sqlalchemy.exc.OperationalError:
                pass
            time.sleep(0.05)
    finally:
        engine.dispose()
