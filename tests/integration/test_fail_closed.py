"""`audit.on_loss: fail_closed` through a real server: no decision is answered that the decision
log cannot keep, and every decision that was answered is in the log."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import grpc

from policy_engine.config import AuditSettings
from policy_engine.errors import NotFoundError
from policy_engine.store import open_database
from policy_engine.store.decision_log import DecisionLogRepository
from policy_engine.testing import running_server
from policy_engine.v1 import authorization_pb2, authorization_pb2_grpc, types_pb2

ROOT = Path(__file__).resolve().parents[2]


def check(tool: str) -> authorization_pb2.CheckRequest:
    return authorization_pb2.CheckRequest(
        tenant="acme", subject=types_pb2.Entity(id="dave"), action="invoke",
        resource=types_pb2.Resource(kind="tool", id=tool),
    )


def batch(*tools: str) -> authorization_pb2.BatchCheckRequest:
    return authorization_pb2.BatchCheckRequest(
        tenant="acme", subject=types_pb2.Entity(id="dave"),
        items=[authorization_pb2.BatchCheckItem(action="invoke", resource=types_pb2.Resource(kind="tool", id=t))
               for t in tools],
    )


def test_decisions_the_log_cannot_keep_are_refused_and_answered_ones_are_kept(tmp_path: Path) -> None:
    """With the log's database locked and its small queue full, Check and BatchCheck answer
    UNAVAILABLE instead of an unlogged decision; once the database is free again, decisions are
    answered, and every decision id ever answered is in the log."""
    # A short wait for room: the refusals come well before the writer's deadline (3 s) turns
    # the locked database into an outage and spills.
    audit = AuditSettings(spill_dir=tmp_path / "audit", writer="thread", on_loss="fail_closed", queue_size=5,
                          max_wait_seconds=0.5)
    with running_server(ROOT / "policies", audit=audit) as server:
        repository = DecisionLogRepository(open_database(server.db_url))
        answered: list[str] = []
        with grpc.insecure_channel(server.target) as channel:
            stub = authorization_pb2_grpc.AuthorizationServiceStub(channel)
            answered.append(stub.Check(check("web_search"), timeout=10).decision_id)
            deadline = time.monotonic() + 15
            while repository.count() < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            # Another writer holds the database: the log's writer blocks in its insert
            # (busy timeout 30 s) and the queue of 5 fills up.
            holder = sqlite3.connect(server.db_url.removeprefix("sqlite:///"), isolation_level=None)
            holder.execute("BEGIN EXCLUSIVE")
            try:
                refused = None
                for n in range(40):
                    try:
                        answered.append(stub.Check(check(f"t{n}"), timeout=10).decision_id)
                    except grpc.RpcError as exc:
                        refused = exc
                        break
                assert refused is not None, "every check was answered although the log could not keep them"
                assert refused.code() == grpc.StatusCode.UNAVAILABLE
                assert "decision log" in (refused.details() or "")
                try:
                    stub.BatchCheck(batch("web_search", "sql_query"), timeout=10)
                    raise AssertionError("a batch was answered although the log could not keep it")
                except grpc.RpcError as exc:
                    assert exc.code() == grpc.StatusCode.UNAVAILABLE
            finally:
                holder.execute("ROLLBACK")
                holder.close()
            deadline = time.monotonic() + 30
            while True:
                try:
                    answered.append(stub.Check(check("web_search"), timeout=10).decision_id)
                    break
                except grpc.RpcError as exc:
                    assert exc.code() == grpc.StatusCode.UNAVAILABLE and time.monotonic() < deadline
                    time.sleep(0.1)
            items = stub.BatchCheck(batch("web_search", "sql_query"), timeout=10).results
            answered.extend(result.decision_id for result in items)
            # Entries the writer spilled to disk while the database was locked are replayed once it
            # answers again: wait for them, with the server still running.
            deadline = time.monotonic() + 30
            missing = set(answered)
            while missing and time.monotonic() < deadline:
                missing = {decision_id for decision_id in missing if not _logged(repository, decision_id)}
                time.sleep(0.1)
            assert not missing, f"answered but not in the log: {sorted(missing)}"


def _logged(repository: DecisionLogRepository, decision_id: str) -> bool:
    try:
        return repository.get(decision_id).decision_id == decision_id
    except NotFoundError:
        return False
