"""Rate limits and quarantines as an attacker meets them, against a real server with real tokens."""

from __future__ import annotations

from pathlib import Path

import grpc

from policy_engine.config import RateSettings, ThreatSettings
from policy_engine.testing import running_server
from policy_engine.v1 import authorization_pb2, authorization_pb2_grpc, types_pb2
from tests.integration.test_audit_trail import eventually
from tests.integration.test_edge_security import ROOT, caller, check_request, security, user_token
from tests.unit.test_tokens import FACTORY


def _refused(stub: authorization_pb2_grpc.AuthorizationServiceStub, requests: list) -> int:  # type: ignore[type-arg]
    refused = 0
    for request in requests:
        try:
            stub.Check(request, metadata=caller())
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, exc
            refused += 1
    return refused


def test_subject_named_only_by_its_token_is_rate_limited(tmp_path: Path) -> None:
    """30 Checks naming bob only through subject_token, past a burst of 5: 25 refused; the token and
    a bare subject.id of bob spend the same budget."""
    jwks = FACTORY.write_jwks(tmp_path / "jwks.json")
    settings = security(jwks, subject=RateSettings(rate=0.01, burst=5))
    with running_server(ROOT / "policies", security=settings) as server, grpc.insecure_channel(server.target) as ch:
        stub = authorization_pb2_grpc.AuthorizationServiceStub(ch)
        by_token = check_request(subject=types_pb2.Entity(), subject_token=user_token(sub="bob"))
        assert _refused(stub, [by_token] * 30) == 25
        assert _refused(stub, [check_request(subject=types_pb2.Entity(id="bob"))]) == 1
        # a fresh token for the same user is the same user
        assert _refused(stub, [check_request(subject=types_pb2.Entity(), subject_token=user_token(sub="bob", jti="2"))]) == 1
        # BatchCheck and FilterAllowed by token count against the same subject
        batch = authorization_pb2.BatchCheckRequest(
            tenant="acme", subject_token=user_token(sub="bob"),
            items=[authorization_pb2.BatchCheckItem(action="invoke", resource=types_pb2.Resource(kind="tool", id="web_search"))],
        )
        try:
            stub.BatchCheck(batch, metadata=caller())
            raise AssertionError("BatchCheck by token was not limited")
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert _refused(stub, [check_request(subject=types_pb2.Entity(), subject_token=user_token(sub="carol"))]) == 0


def test_one_users_denials_quarantine_the_pair_not_the_shared_agent(tmp_path: Path) -> None:
    """bob's agent probing past the limit quarantines agent:helper for bob only; other users keep it,
    and bob keeps working without it. Denials from two more users then quarantine the agent for everyone."""
    jwks = FACTORY.write_jwks(tmp_path / "jwks.json")
    threats = ThreatSettings(tenants={"acme": (3, 60.0, 300.0, 3)})
    with running_server(ROOT / "policies", security=security(jwks), threats=threats) as server, grpc.insecure_channel(
        server.target
    ) as ch:
        stub = authorization_pb2_grpc.AuthorizationServiceStub(ch)

        def check(subject: str, tool: str, actor: str | None = "agent:helper") -> authorization_pb2.CheckResponse:
            request = check_request(
                subject=types_pb2.Entity(id=subject),
                resource=types_pb2.Resource(kind="tool", id=tool),
                **({"actor": types_pb2.Entity(id=actor)} if actor else {}),
            )
            return stub.Check(request, metadata=caller())

        for _ in range(12):  # an LLM retrying a denied tool for bob, far past the limit
            assert not check("bob", "sql_query").allowed
        eventually(lambda: check("bob", "web_search").reason == "quarantined")
        assert check("carol", "web_search").allowed, "the shared agent was taken from another user"
        assert check("dave", "web_search").allowed
        assert check("bob", "web_search", actor=None).allowed
        # denials of the agent from two more subjects (three in all) quarantine it tenant-wide
        assert not check("carol", "shell_exec").allowed
        assert not check("dave", "sql_query").allowed
        eventually(lambda: check("alice", "web_search").reason == "quarantined")


def test_actor_wide_threshold_is_configurable(tmp_path: Path) -> None:
    """With actor_subjects: 1 the pre-pair behaviour is back: one user's burst quarantines the agent for all."""
    jwks = FACTORY.write_jwks(tmp_path / "jwks.json")
    threats = ThreatSettings(tenants={"acme": (3, 60.0, 300.0, 1)})
    with running_server(ROOT / "policies", security=security(jwks), threats=threats) as server, grpc.insecure_channel(
        server.target
    ) as ch:
        stub = authorization_pb2_grpc.AuthorizationServiceStub(ch)
        helper = types_pb2.Entity(id="agent:helper")
        for _ in range(4):
            denied = check_request(subject=types_pb2.Entity(id="bob"), actor=helper, resource=types_pb2.Resource(kind="tool", id="sql_query"))
            assert not stub.Check(denied, metadata=caller()).allowed
        other = check_request(subject=types_pb2.Entity(id="carol"), actor=helper)
        eventually(lambda: stub.Check(other, metadata=caller()).reason == "quarantined")
