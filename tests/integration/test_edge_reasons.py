"""What a caller learns of the policy, replayed against a real server with real tokens."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest

from policy_engine.testing import ServerHandle, running_server
from policy_engine.v1 import admin_pb2, admin_pb2_grpc, authorization_pb2, authorization_pb2_grpc, types_pb2
from tests.integration.test_edge_security import ROOT, caller, check_request, security, struct
from tests.unit.test_tokens import FACTORY

RULE_MARKERS = ("p, ", "policy.csv", "line ", "pattern", "data:", "allow ", "deny,", "viewer", "agent_operator", "mfa")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    jwks = FACTORY.write_jwks(tmp_path_factory.mktemp("keys") / "jwks.json")
    with running_server(ROOT / "policies", security=security(jwks)) as handle:
        yield handle


@pytest.fixture(scope="module")
def stub(server: ServerHandle) -> Iterator[authorization_pb2_grpc.AuthorizationServiceStub]:
    with grpc.insecure_channel(server.target) as channel:
        yield authorization_pb2_grpc.AuthorizationServiceStub(channel)


def _no_policy_text(text: str) -> None:
    for marker in RULE_MARKERS:
        assert marker not in text, text


def tool(name: str) -> types_pb2.Resource:
    return types_pb2.Resource(kind="tool", id=name)


PAYMENT = dict(resource=tool("payments_transfer"))  # denied by an explicit deny rule


def test_check_caller_gets_a_reason_code_and_the_decision_id(stub, server: ServerHandle) -> None:  # type: ignore[no-untyped-def]
    """With only authz:check, a denial says "deny_rule" and its decision id; the log keeps the rule."""
    response = stub.Check(check_request(**PAYMENT), metadata=caller())
    assert not response.allowed
    assert response.reason == "deny_rule"
    assert len(response.decision_id) == 32
    assert not response.matched_rules
    allowed = stub.Check(check_request(), metadata=caller())
    assert allowed.allowed and allowed.reason == "allowed"
    with grpc.insecure_channel(server.target) as channel:
        admin = admin_pb2_grpc.PolicyAdminServiceStub(channel)
        logged = None
        for _ in range(50):  # the decision log is written behind the answer
            try:
                logged = admin.GetDecision(admin_pb2.GetDecisionRequest(decision_id=response.decision_id), metadata=caller("policy:read", sub="auditor"))
                break
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.NOT_FOUND
                time.sleep(0.1)
        assert logged is not None
        assert "payments_transfer" in logged.decision.rule and "deny" in logged.decision.reason


def test_explain_needs_the_explain_scope(stub) -> None:  # type: ignore[no-untyped-def]
    """explain from an authz:check-only caller is PERMISSION_DENIED; with authz:explain it names the rule and line."""
    for call, request in (
        (stub.Check, check_request(explain=True, **PAYMENT)),
        (stub.BatchCheck, authorization_pb2.BatchCheckRequest(
            tenant="acme", subject=types_pb2.Entity(id="dave"), explain=True,
            items=[authorization_pb2.BatchCheckItem(action="invoke", resource=tool("payments_transfer"))])),
        (stub.FilterAllowed, authorization_pb2.FilterAllowedRequest(
            tenant="acme", subject=types_pb2.Entity(id="dave"), action="invoke", explain=True,
            candidates=[tool("payments_transfer")])),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            call(request, metadata=caller())
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert caught.value.details().startswith("explain")
    explained = stub.Check(check_request(explain=True, **PAYMENT), metadata=caller("authz:check authz:explain", sub="policy-debugger"))
    assert "payments_transfer" in explained.reason
    assert explained.matched_rules[0].file == "policy.csv" and explained.matched_rules[0].line > 0


def test_batch_filter_and_list_hide_policy_text(stub) -> None:  # type: ignore[no-untyped-def]
    """BatchCheck, FilterAllowed and ListAllowed give codes (and input errors) to a check-only caller."""
    items = [
        authorization_pb2.BatchCheckItem(action="invoke", resource=tool(name))
        for name in ("web_search", "payments_transfer", "sql_query")
    ] + [authorization_pb2.BatchCheckItem(action="invoke", resource=types_pb2.Resource(kind="tool", id="a/../b"))]
    batch = stub.BatchCheck(
        authorization_pb2.BatchCheckRequest(tenant="acme", subject=types_pb2.Entity(id="dave"), items=items),
        metadata=caller(),
    )
    assert [r.reason for r in batch.results] == ["allowed", "deny_rule", "no_matching_rule", "invalid"]
    assert batch.results[3].error.startswith("items[3].resource.id")  # about the request, not the policy
    filtered = stub.FilterAllowed(
        authorization_pb2.FilterAllowedRequest(
            tenant="acme", subject=types_pb2.Entity(id="bob", attributes=None), actor=types_pb2.Entity(id="agent:ops"),
            action="invoke", candidates=[tool("web_search"), tool("shell_exec"), tool("payments_transfer")],
        ),
        metadata=caller(),
    )
    # bob carries no mfa attribute: the condition on it fails to evaluate, a denial that would
    # name the matcher's terms
    assert [d.reason for d in filtered.denied] == ["evaluation_error", "deny_rule"]
    with_mfa = stub.FilterAllowed(
        authorization_pb2.FilterAllowedRequest(
            tenant="acme", subject=types_pb2.Entity(id="bob", attributes=struct(mfa=True)),
            actor=types_pb2.Entity(id="agent:ops"), action="invoke", candidates=[tool("shell_exec")],
        ),
        metadata=caller(),
    )
    assert [(d.reason, d.denied_party) for d in with_mfa.denied] == [("actor", "actor")]
    for denial in filtered.denied:
        _no_policy_text(denial.reason)
    listing = stub.ListAllowed(
        authorization_pb2.ListAllowedRequest(tenant="acme", subject=types_pb2.Entity(id="carol"), action="read", kind="data"),
        metadata=caller(),
    )
    assert listing.partial
    for reason in listing.partial_reasons:
        _no_policy_text(reason)
    detailed = stub.ListAllowed(
        authorization_pb2.ListAllowedRequest(tenant="acme", subject=types_pb2.Entity(id="carol"), action="read", kind="data"),
        metadata=caller("authz:check authz:explain", sub="policy-debugger"),
    )
    assert any("line 30: pattern 'data:*'" in reason for reason in detailed.partial_reasons)


def test_policy_readers_see_the_rule_text(stub, server: ServerHandle) -> None:  # type: ignore[no-untyped-def]
    """A caller that may read policy versions (policy:read) with authz:check also sees the deciding rule."""
    both = caller("authz:check policy:read", sub="operator")
    response = stub.Check(check_request(**PAYMENT), metadata=both)
    assert "payments_transfer" in response.reason
