"""Every decision made through the server is in the decision log exactly once, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from policy_engine.config import AuditSettings
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
