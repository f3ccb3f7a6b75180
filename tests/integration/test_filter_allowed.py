"""FilterAllowed over a real gRPC channel against an in-process server on a free port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import struct_pb2

from policy_engine import limits
from tests.support.edge import EXPLAINING_LOCAL_CALLERS
from policy_engine.testing import running_server
from policy_engine.v1 import authorization_pb2, authorization_pb2_grpc, types_pb2

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ["shell_exec", "web_search", "payments_transfer", "sql_query", "code_interpreter", "email_send"]


@pytest.fixture(scope="module")
def stub() -> Iterator[authorization_pb2_grpc.AuthorizationServiceStub]:
    with running_server(ROOT / "policies", edge=EXPLAINING_LOCAL_CALLERS) as server, grpc.insecure_channel(server.target) as channel:
        yield authorization_pb2_grpc.AuthorizationServiceStub(channel)


def struct(**values: object) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(values)
    return s


def tools(*names: str) -> list[types_pb2.Resource]:
    return [types_pb2.Resource(kind="tool", id=name) for name in names]


def request(candidates: list[types_pb2.Resource], **overrides: object) -> authorization_pb2.FilterAllowedRequest:
    fields: dict[str, object] = dict(
        tenant="acme",
        subject=types_pb2.Entity(id="bob", attributes=struct(mfa=True)),
        action="invoke",
        candidates=candidates,
    )
    fields.update(overrides)
    return authorization_pb2.FilterAllowedRequest(**fields)  # type: ignore[arg-type]


def test_allowed_in_order_and_denied_with_reasons(stub) -> None:  # type: ignore[no-untyped-def]
    """Allowed candidates come back in request order, exactly as sent; each other one as a Denial with its reason."""
    candidates = tools(*TOOLS)
    candidates[1].attributes.update({"vendor": "acme"})
    response = stub.FilterAllowed(request(candidates))
    assert [r.id for r in response.allowed] == ["shell_exec", "web_search", "sql_query", "code_interpreter"]
    assert response.allowed[1] == candidates[1]
    assert list(response.allowed_indexes) == [0, 1, 3, 4]
    assert [(d.index, d.resource.id) for d in response.denied] == [(2, "payments_transfer"), (5, "email_send")]
    assert all(d.reason for d in response.denied)
    assert response.policy_version == 1


def test_each_answer_equals_check(stub) -> None:  # type: ignore[no-untyped-def]
    """Each candidate is allowed exactly when Check allows it, for a subject with an actor."""
    actor = types_pb2.Entity(id="agent:ops")
    subject = types_pb2.Entity(id="alice", attributes=struct(mfa=True))
    response = stub.FilterAllowed(request(tools(*TOOLS), subject=subject, actor=actor))
    allowed = {r.id for r in response.allowed}
    for name in TOOLS:
        single = stub.Check(
            authorization_pb2.CheckRequest(
                tenant="acme", subject=subject, actor=actor, action="invoke", resource=tools(name)[0]
            )
        )
        assert single.allowed == (name in allowed), name


def test_explain_says_why_each_is_denied(stub) -> None:  # type: ignore[no-untyped-def]
    """With explain, a denial names the deny rule with file and line, or the actor, or the missing rule."""
    response = stub.FilterAllowed(
        request(tools("payments_transfer", "shell_exec", "email_send"), actor=types_pb2.Entity(id="agent:helper"), explain=True)
    )
    by_id = {d.resource.id: d for d in response.denied}
    assert by_id["payments_transfer"].failure == types_pb2.FAILURE_DENY_RULE
    assert by_id["payments_transfer"].matched_rules[0].file == "policy.csv"
    assert by_id["payments_transfer"].matched_rules[0].line > 0
    assert by_id["shell_exec"].failure == types_pb2.FAILURE_ACTOR
    assert by_id["shell_exec"].denied_party == "actor"
    assert by_id["email_send"].failure == types_pb2.FAILURE_NO_MATCHING_RULE


def test_invalid_candidate_is_denied_with_error(stub) -> None:  # type: ignore[no-untyped-def]
    """An invalid candidate is denied with an error naming candidates[i]; the others are decided."""
    response = stub.FilterAllowed(request(tools("web_search", "a/../b", "web*")))
    assert [r.id for r in response.allowed] == ["web_search"]
    errors = {d.index: d.error for d in response.denied}
    assert errors[1].startswith("candidates[1].id:")
    assert errors[2].startswith("candidates[2].id:")


def test_shared_fields_are_validated_once(stub) -> None:  # type: ignore[no-untyped-def]
    """An empty action or an invalid subject fails the whole request with INVALID_ARGUMENT naming it."""
    for overrides, field in (({"action": ""}, "action"), ({"subject": types_pb2.Entity(id="")}, "subject.id")):
        with pytest.raises(grpc.RpcError) as caught:
            stub.FilterAllowed(request(tools("web_search"), **overrides))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.details().startswith(field)


def test_limit(stub) -> None:  # type: ignore[no-untyped-def]
    """MAX_BATCH_ITEMS candidates are answered; one more is INVALID_ARGUMENT naming candidates."""
    names = [f"t{i}" for i in range(limits.MAX_BATCH_ITEMS - 1)] + ["web_search"]
    response = stub.FilterAllowed(request(tools(*names)), timeout=60)
    assert [r.id for r in response.allowed] == ["web_search"]
    assert len(response.denied) == limits.MAX_BATCH_ITEMS - 1
    with pytest.raises(grpc.RpcError) as caught:
        stub.FilterAllowed(request(tools(*names, "one_more")))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith("candidates:")


def test_subject_token_is_unimplemented(stub) -> None:  # type: ignore[no-untyped-def]
    """subject_token is refused as UNIMPLEMENTED, as in Check."""
    with pytest.raises(grpc.RpcError) as caught:
        stub.FilterAllowed(request(tools("web_search"), subject_token="eyJ..."))
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
