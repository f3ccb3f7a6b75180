"""Check over a real gRPC channel against an in-process server on a free port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from policy_engine.store import NewVersion, PolicyRepository, open_database
from tests.support.edge import EXPLAINING_LOCAL_CALLERS
from policy_engine.testing import ServerHandle, running_server
from policy_engine.v1 import authorization_pb2, authorization_pb2_grpc, types_pb2


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    root = Path(__file__).resolve().parents[2]
    with running_server(root / "policies", edge=EXPLAINING_LOCAL_CALLERS) as handle:
        yield handle


@pytest.fixture(scope="module")
def stub(server: ServerHandle) -> Iterator[authorization_pb2_grpc.AuthorizationServiceStub]:
    with grpc.insecure_channel(server.target) as channel:
        yield authorization_pb2_grpc.AuthorizationServiceStub(channel)


def struct(**values: object) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(values)
    return s


def request(**overrides: object) -> authorization_pb2.CheckRequest:
    fields: dict[str, object] = dict(
        tenant="acme",
        subject=types_pb2.Entity(id="bob", attributes=struct(mfa=True, clearance=2)),
        action="invoke",
        resource=types_pb2.Resource(kind="tool", id="shell_exec"),
    )
    fields.update(overrides)
    return authorization_pb2.CheckRequest(**fields)  # type: ignore[arg-type]


class TestDecisions:
    def test_allow_names_version_and_rule(self, stub) -> None:  # type: ignore[no-untyped-def]
        """An allowed check returns the policy version, a decision id and, with explain, the rule."""
        response = stub.Check(request(explain=True))
        assert response.allowed
        assert response.policy_version == 1
        assert len(response.decision_id) == 32
        assert response.matched_rules
        assert response.matched_rules[0].file == "policy.csv"
        assert response.matched_rules[0].line > 0

    def test_condition_denies_without_mfa(self, stub) -> None:  # type: ignore[no-untyped-def]
        """The same tool without MFA is denied."""
        response = stub.Check(
            request(subject=types_pb2.Entity(id="bob", attributes=struct(mfa=False)))
        )
        assert not response.allowed
        assert response.denied_party == "subject"

    def test_deny_rule_overrides(self, stub) -> None:  # type: ignore[no-untyped-def]
        """An admin is denied the payments tool by a deny rule, named in the reason."""
        response = stub.Check(
            request(
                subject=types_pb2.Entity(id="alice", attributes=struct(mfa=True)),
                resource=types_pb2.Resource(kind="tool", id="payments_transfer"),
                explain=True,
            )
        )
        assert not response.allowed
        assert "deny" in response.reason

    def test_actor_denied(self, stub) -> None:  # type: ignore[no-untyped-def]
        """An agent without the tool cannot use it for a user who has it; the reason names the actor."""
        response = stub.Check(request(actor=types_pb2.Entity(id="agent:helper")))
        assert not response.allowed
        assert response.denied_party == "actor"
        assert "agent:helper" in response.reason

    def test_actor_allowed(self, stub) -> None:  # type: ignore[no-untyped-def]
        """An agent holding the tool may use it for a user who may."""
        response = stub.Check(
            request(
                subject=types_pb2.Entity(id="alice", attributes=struct(mfa=True)),
                resource=types_pb2.Resource(kind="tool", id="email_send"),
                actor=types_pb2.Entity(id="agent:ops"),
            )
        )
        assert response.allowed

    def test_context_and_unknown_tenant(self, stub) -> None:  # type: ignore[no-untyped-def]
        """A tenant the policy does not know gets a denial, not an error."""
        response = stub.Check(request(tenant="initech", context=struct(ip="10.0.0.1")))
        assert not response.allowed


class TestRepeatedChecks:
    """A Check of names only that was decided before is answered from what the server
    remembers (DecisionService.check_remembered): it must answer exactly as the first time."""

    NAMES = [
        (tenant, subject, action, kind, name)
        for tenant in ("acme", "globex", "initech")
        for subject in ("alice", "bob", "carol", "dave", "erin", "nobody")
        for action, kind, name in (
            ("invoke", "tool", "web_search"),
            ("invoke", "tool", "sql_query"),
            ("invoke", "tool", "shell_exec"),
            ("generate", "model", "gpt-large"),
            ("write", "memory", "session/1"),
        )
    ]

    def test_a_repeat_answers_as_the_first_check_did(self, stub) -> None:  # type: ignore[no-untyped-def]
        """Every field of the answer but the decision id is the first answer's, allowed or
        denied, for every subject, tenant and resource kind of the example policies."""
        answers = {}
        for tenant, subject, action, kind, name in self.NAMES:
            plain = authorization_pb2.CheckRequest(
                tenant=tenant, subject=types_pb2.Entity(id=subject), action=action,
                resource=types_pb2.Resource(kind=kind, id=name), request_id=f"{subject}-{name}",
            )
            first, *repeats = [stub.Check(plain, timeout=5) for _ in range(3)]
            ids = {first.decision_id, *(repeat.decision_id for repeat in repeats)}
            assert len(ids) == 3
            for repeat in repeats:
                repeat.decision_id = first.decision_id
                assert repeat == first, (tenant, subject, name)
            answers[first.allowed] = answers.get(first.allowed, 0) + 1
        assert answers[True] and answers[False]  # the grid has both kinds of answer

    def test_a_repeat_with_an_overlong_request_id_is_still_refused(self, stub) -> None:  # type: ignore[no-untyped-def]
        """Remembering a Check does not skip the request's own bounds."""
        plain = authorization_pb2.CheckRequest(
            tenant="acme", subject=types_pb2.Entity(id="dave"), action="invoke",
            resource=types_pb2.Resource(kind="tool", id="web_search"),
        )
        assert stub.Check(plain, timeout=5).allowed
        assert stub.Check(plain, timeout=5).allowed
        plain.request_id = "r" * 300
        with pytest.raises(grpc.RpcError) as caught:
            stub.Check(plain, timeout=5)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "request_id" in (caught.value.details() or "")


class TestBadInput:
    @pytest.mark.parametrize(
        ("overrides", "field"),
        [
            ({"tenant": ""}, "tenant"),
            ({"action": ""}, "action"),
            ({"resource": types_pb2.Resource(kind="tool")}, "resource.id"),
            ({"subject": types_pb2.Entity()}, "subject.id"),
            ({"tenant": "x" * 300}, "tenant"),
            ({"resource": types_pb2.Resource(kind="data", id="a/../b")}, "resource.id"),
            ({"subject": types_pb2.Entity(id="admin")}, "subject.id"),
            ({"subject": types_pb2.Entity(id="bob", attributes=struct(blob="x" * 20000))}, "subject.attributes"),
        ],
    )
    def test_invalid_argument_names_field(self, stub, overrides, field) -> None:  # type: ignore[no-untyped-def]
        """Each invalid field gets INVALID_ARGUMENT with a message naming it."""
        with pytest.raises(grpc.RpcError) as caught:
            stub.Check(request(**overrides))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.details().startswith(field)

    def test_unknown_policy_set_is_not_found(self, stub) -> None:  # type: ignore[no-untyped-def]
        """A policy set that does not exist is NOT_FOUND, naming it."""
        with pytest.raises(grpc.RpcError) as caught:
            stub.Check(request(policy_set="nope"))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert "nope" in caught.value.details()

    def test_subject_token_is_unimplemented(self, stub) -> None:  # type: ignore[no-untyped-def]
        """Verified end-user tokens are refused as UNIMPLEMENTED rather than ignored."""
        with pytest.raises(grpc.RpcError) as caught:
            stub.Check(request(subject_token="eyJ..."))
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED

    def test_min_version_not_reached_fails_at_deadline(self, stub) -> None:  # type: ignore[no-untyped-def]
        """Asking for a version that never comes is FAILED_PRECONDITION, naming the version it has."""
        with pytest.raises(grpc.RpcError) as caught:
            stub.Check(request(min_version=5), timeout=0.5)
        assert caught.value.code() in (
            grpc.StatusCode.FAILED_PRECONDITION,
            grpc.StatusCode.DEADLINE_EXCEEDED,
        )


def test_min_version_waits_for_activation(tmp_path: Path) -> None:
    """A check asking for version 2 is answered once version 2 is activated, by version 2."""
    root = Path(__file__).resolve().parents[2]
    with running_server(root / "policies") as server:
        repository = PolicyRepository(open_database(server.db_url))
        v1 = repository.get_version("default", 1)
        new = NewVersion(
            model_text=v1.model_text,
            policy_text=v1.policy_text + "\np, viewer, *, tool:calculator, invoke, True, allow\n",
            sha256="f" * 64,
            rule_count=v1.rule_count + 1,
            message="calculator",
            author="test",
            tests=v1.tests,
        )
        repository.add_version("default", new)
        with grpc.insecure_channel(server.target) as channel:
            stub = authorization_pb2_grpc.AuthorizationServiceStub(channel)
            future = stub.Check.future(
                request(
                    subject=types_pb2.Entity(id="dave"),
                    resource=types_pb2.Resource(kind="tool", id="calculator"),
                    min_version=2,
                ),
                timeout=10,
            )
            repository.activate("default", 2, actor="test", reason="go")
            response = future.result()
        assert response.policy_version == 2
        assert response.allowed


def test_a_repeated_check_follows_activations(tmp_path: Path) -> None:
    """The same Check asked again and again is answered by whichever version is active: what a
    server remembers of earlier answers never outlives their version."""
    root = Path(__file__).resolve().parents[2]
    with running_server(root / "policies", reload_interval=0.05) as server:
        repository = PolicyRepository(open_database(server.db_url))
        v1 = repository.get_version("default", 1)
        repository.add_version("default", NewVersion(
            model_text=v1.model_text,
            policy_text=v1.policy_text + "\np, viewer, *, tool:calculator, invoke, True, allow\n",
            sha256="e" * 64, rule_count=v1.rule_count + 1, message="calculator", author="test", tests=v1.tests,
        ))
        calculator = request(subject=types_pb2.Entity(id="dave"), resource=types_pb2.Resource(kind="tool", id="calculator"))
        with grpc.insecure_channel(server.target) as channel:
            stub = authorization_pb2_grpc.AuthorizationServiceStub(channel)
            for number, allowed in ((1, False), (2, True), (1, False), (2, True)):
                repository.activate("default", number, actor="test", reason="flip")
                answers = [stub.Check(calculator, timeout=5) for _ in range(3)]
                while answers[-1].policy_version != number:
                    answers.append(stub.Check(calculator, timeout=5))
                assert answers[-1].allowed is allowed
                assert all(a.allowed is (a.policy_version == 2) for a in answers)


class TestServing:
    def test_health_is_serving(self, server: ServerHandle) -> None:
        """The standard health service reports SERVING once a policy is loaded."""
        with grpc.insecure_channel(server.target) as channel:
            response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert response.status == health_pb2.HealthCheckResponse.SERVING

    def test_reflection_lists_services(self, server: ServerHandle) -> None:
        """Server reflection lists the authorization and health services to the local admin."""
        with grpc.insecure_channel(server.target) as channel:
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            responses = stub.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                metadata=(("authorization", f"Bearer {server.admin_token}"),),
            )
            names = {s.name for r in responses for s in r.list_services_response.service}
        assert {"policy_engine.v1.AuthorizationService", "grpc.health.v1.Health"} <= names
