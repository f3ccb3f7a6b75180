"""The database goes away in the middle of a burst of decisions, and comes back: every decision is logged once."""

from __future__ import annotations

from pathlib import Path

import grpc

from policy_engine.config import AuditSettings
from policy_engine.store import ensure_schema, open_database
from policy_engine.store.decision_log import DecisionLogRepository
from policy_engine.testing import running_server
from policy_engine.v1 import authorization_pb2, authorization_pb2_grpc, types_pb2
from tests.support.tcp_proxy import TcpProxy

ROOT = Path(__file__).resolve().parents[2]


def batch(stub: authorization_pb2_grpc.AuthorizationServiceStub, tag: str) -> list[str]:
    items = [
        authorization_pb2.BatchCheckItem(
            action="invoke", resource=types_pb2.Resource(kind="tool", id="web_search"), request_id=f"{tag}-{i}"
        )
        for i in range(1000)
    ]
    request = authorization_pb2.BatchCheckRequest(tenant="acme", subject=types_pb2.Entity(id="dave"), items=items)
    return [r.decision_id for r in stub.BatchCheck(request, timeout=30).results]


def test_postgres_cut_mid_burst_then_back(postgres_url: str, tmp_path: Path) -> None:
    """Decisions made while PostgreSQL is unreachable are spilled, then replayed: 5,000 entries, once each, chain intact."""
    engine = open_database(postgres_url)
    ensure_schema(engine, postgres_url)
    proxy = TcpProxy(("127.0.0.1", 5432))
    proxy.start()
    url = postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    audit = AuditSettings(spill_dir=tmp_path / "audit", writer="process")
    ids: list[str] = []
    try:
        with running_server(ROOT / "policies", db_url=url, audit=audit) as server, grpc.insecure_channel(server.target) as ch:
            stub = authorization_pb2_grpc.AuthorizationServiceStub(ch)
            ids += batch(stub, "before-1") + batch(stub, "before-2")
            proxy.stop()  # the database is gone; decisions go on with the loaded version
            ids += batch(stub, "during-1") + batch(stub, "during-2")
            proxy.start()
            ids += batch(stub, "after")
        # the server has drained: spilled entries were replayed once the database answered
    finally:
        proxy.close()
    repository = DecisionLogRepository(engine)
    assert len(set(ids)) == 5000
    assert repository.count() == 5000
    assert {d.decision_id for d in repository.query(limit=5000)} == set(ids)
    assert repository.verify().ok
    engine.dispose()
