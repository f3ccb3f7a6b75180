"""The zero-trust edge against a real server: forged callers, forged users, abuse, TLS."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from policy_engine.config import (
    CallerAuthSettings,
    RateLimitSettings,
    RateSettings,
    SecuritySettings,
    SubjectAuthSettings,
    TlsSettings,
    TokenSettings,
)
from policy_engine.metrics import METRICS
from policy_engine.testing import ServerHandle, running_server
from policy_engine.v1 import admin_pb2, admin_pb2_grpc, authorization_pb2, authorization_pb2_grpc, types_pb2
from tests.support.credentials import AUDIENCE, ISSUER, SUBJECT_AUDIENCE, make_pki
from tests.unit.test_tokens import ATTACKS, FACTORY

ROOT = Path(__file__).resolve().parents[2]


def security(jwks: Path, **limits: object) -> SecuritySettings:
    return SecuritySettings(
        callers=CallerAuthSettings(
            tokens=TokenSettings(issuer=ISSUER, audience=AUDIENCE, jwks_file=jwks),
            role_scopes={
                "policy-author": frozenset({"policy:read", "policy:write"}),
                "release-manager": frozenset({"policy:read", "policy:activate"}),
            },
        ),
        subjects=SubjectAuthSettings(
            tokens=TokenSettings(issuer=ISSUER, audience=SUBJECT_AUDIENCE, jwks_file=jwks),
            attributes={"mfa": {"claim": "amr", "contains": "mfa"}, "clearance": "clearance"},
            tenant_claim="tenant",
            verified_tenants=frozenset({"globex"}),
        ),
        rate_limits=RateLimitSettings(**limits) if limits else RateLimitSettings(),  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    jwks = FACTORY.write_jwks(tmp_path_factory.mktemp("keys") / "jwks.json")
    with running_server(ROOT / "policies", security=security(jwks)) as handle:
        yield handle


@pytest.fixture(scope="module")
def channel(server: ServerHandle) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.target) as ch:
        yield ch


def _decisions_made() -> float:
    """Decisions counted by this process's metrics (the test server runs in-process)."""
    return sum(
        sample.value
        for metric in METRICS.decisions.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


# Made at import: it must outlive a whole suite run (a five-minute token expired mid-run).
CALLER = bearer(FACTORY.token(scope="authz:check", exp=int(time.time()) + 6 * 3600))


def caller(scope: str = "authz:check", **claims: object) -> tuple[tuple[str, str], ...]:
    """A caller token made now: a module-level one expires (300 s) during a long suite run."""
    return bearer(FACTORY.token(scope=scope, **claims))  # type: ignore[arg-type]


def check_request(**overrides: object) -> authorization_pb2.CheckRequest:
    fields: dict[str, object] = dict(
        tenant="acme",
        subject=types_pb2.Entity(id="dave"),
        action="invoke",
        resource=types_pb2.Resource(kind="tool", id="web_search"),
    )
    fields.update(overrides)
    return authorization_pb2.CheckRequest(**fields)  # type: ignore[arg-type]


def code_of(call, *args, **kwargs) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as caught:
        result = call(*args, **kwargs)
        if hasattr(result, "__next__"):
            next(result)
    return caught.value.code()


def version_count(channel: grpc.Channel) -> int:
    reader = bearer(FACTORY.token(roles=["policy-author"], scope=""))
    stub = admin_pb2_grpc.PolicyAdminServiceStub(channel)
    return len(stub.ListVersions(admin_pb2.ListVersionsRequest(policy_set="default"), metadata=reader).versions)


class TestCallers:
    def test_valid_token_is_served(self, channel: grpc.Channel) -> None:
        """A caller with the authz:check scope gets decisions."""
        stub = authorization_pb2_grpc.AuthorizationServiceStub(channel)
        assert stub.Check(check_request(), metadata=CALLER).allowed

    @pytest.mark.parametrize("attack", sorted(ATTACKS))
    def test_forged_caller_token_is_unauthenticated(self, channel: grpc.Channel, attack: str) -> None:
        """Every token attack is UNAUTHENTICATED at the edge, before any decision is made."""
        decisions_before = _decisions_made()
        stub = authorization_pb2_grpc.AuthorizationServiceStub(channel)
        token = ATTACKS[attack]()
        expected = {grpc.StatusCode.UNAUTHENTICATED}
        if len(token) > 8000:
            # gRPC itself refuses metadata beyond its 8 KiB header limit before our code runs
            expected.add(grpc.StatusCode.RESOURCE_EXHAUSTED)
            expected.add(grpc.StatusCode.INTERNAL)
        assert code_of(stub.Check, check_request(), metadata=bearer(token)) in expected
        assert _decisions_made() == decisions_before

    def test_no_credentials_or_wrong_metadata_key(self, channel: grpc.Channel) -> None:
        """No token, or a token under another metadata key, is UNAUTHENTICATED."""
        stub = authorization_pb2_grpc.AuthorizationServiceStub(channel)
        assert code_of(stub.Check, check_request()) == grpc.StatusCode.UNAUTHENTICATED
        token = FACTORY.token()
        assert code_of(stub.Check, check_request(), metadata=(("x-token", token),)) == grpc.StatusCode.UNAUTHENTICATED

    def test_admin_rpc_with_only_check_scope_is_denied_and_writes_nothing(self, channel: grpc.Channel) -> None:
        """A caller holding only authz:check cannot push: PERMISSION_DENIED, no new version."""
        before = version_count(channel)
        stub = admin_pb2_grpc.PolicyAdminServiceStub(channel)
        request = admin_pb2.PushVersionRequest(policy_set="default", content=admin_pb2.BundleContent(model="x", policy="y"))
        assert code_of(stub.PushVersion, request, metadata=CALLER) == grpc.StatusCode.PERMISSION_DENIED
        assert version_count(channel) == before

    def test_writer_cannot_activate(self, channel: grpc.Channel) -> None:
        """policy:write without policy:activate cannot activate, nor push with --activate."""
        writer = bearer(FACTORY.token(roles=["policy-author"], scope=""))
        stub = admin_pb2_grpc.PolicyAdminServiceStub(channel)
        activate = admin_pb2.ActivateVersionRequest(policy_set="default", number=1)
        assert code_of(stub.ActivateVersion, activate, metadata=writer) == grpc.StatusCode.PERMISSION_DENIED
        push = admin_pb2.PushVersionRequest(policy_set="default", activate=True, content=admin_pb2.BundleContent(model="x"))
        assert code_of(stub.PushVersion, push, metadata=writer) == grpc.StatusCode.PERMISSION_DENIED

    def test_activation_records_the_authenticated_caller(self, channel: grpc.Channel) -> None:
        """The author of an activation is the token's subject, not what the request claims."""
        manager = bearer(FACTORY.token(sub="rita", roles=["release-manager"], scope=""))
        stub = admin_pb2_grpc.PolicyAdminServiceStub(channel)
        response = stub.ActivateVersion(
            admin_pb2.ActivateVersionRequest(policy_set="default", number=1, author="mallory", reason="re-affirm"),
            metadata=manager,
        )
        assert response.activation.actor == "rita"

    def test_stream_and_reflection_need_credentials(self, channel: grpc.Channel) -> None:
        """WatchActivations and server reflection without credentials are UNAUTHENTICATED."""
        admin = admin_pb2_grpc.PolicyAdminServiceStub(channel)
        assert code_of(admin.WatchActivations, admin_pb2.WatchActivationsRequest()) == grpc.StatusCode.UNAUTHENTICATED
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        assert (
            code_of(reflection.ServerReflectionInfo, iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
            == grpc.StatusCode.UNAUTHENTICATED
        )

    def test_health_needs_no_credentials(self, channel: grpc.Channel) -> None:
        """Load balancers can probe health without a token."""
        response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert response.status == health_pb2.HealthCheckResponse.SERVING


def user_token(**claims: object) -> str:
    base = {"aud": SUBJECT_AUDIENCE, "sub": "bob", "tenant": "acme", "amr": ["pwd", "mfa"], "clearance": 2}
    base.update(claims)
    return FACTORY.token(**base)  # type: ignore[arg-type]


class TestEndUsers:
    def test_subject_comes_from_the_token(self, channel: grpc.Channel) -> None:
        """With a subject token, the subject and its MFA come from the token, not the request."""
        stub = authorization_pb2_grpc.AuthorizationServiceStub(channel)
        response = stub.Check(
            check_request(subject=types_pb2.Entity(), subject_token=user_token(), resource=types_pb2.Resource(kind="tool", id="shell_exec")),
            metadata=CALLER,
        )
        assert response.allowed

    def test_subject_id_disagreeing_with_token_is_refused(self, channel: grpc.Channel) -> None:
        """Claiming to be alice with bob's token is PERMISSION_DENIED."""
        stub = authorization_pb2_grpc.AuthorizationServiceStub(channel)
        request = check_request(subject=types_pb2.Entity(id="alice"), subject_token=user_token())
        assert code_of(stub.Check, request, metadata=CALLER) == grpc.StatusCode.PERMISSION_DENIED

    def test_token_for_another_tenant_is_refused(self, channel: grpc.Channel) -> None:
        """A subject token issued for acme cannot be used in globex."""
        stub = authorization_pb2_grpc.AuthorizationServiceStub(channel)
        request = check_request(tenant="globex", subject=types_pb2.Entity(), subject_token=user_token())
        assert code_of(stub.Check, request, metadata=CALLER) == grpc.StatusCode.PERMISSION_DENIED

    def test_verified_tenant_refuses_bare_subject(self, channel: grpc.Channel) -> None:
        """globex requires verified subjects: a bare subject.id is PERMISSION_DENIED."""
        stub = authorization_pb2_grpc.AuthorizationServiceStub(channel)
        request = check_request(tenant="globex", subject=types_pb2.Entity(id="erin"))
        assert code_of(stub.Check, request, metadata=CALLER) == grpc.StatusCode.PERMISSION_DENIED

    def test_forged_subject_token_is_unauthenticated(self, channel: grpc.Channel) -> None:
        """A subject token signed by an unknown key is UNAUTHENTICATED."""
        stub = authorization_pb2_grpc.AuthorizationServiceStub(channel)
        forged = FACTORY.token("stranger", aud=SUBJECT_AUDIENCE, sub="alice", tenant="acme")
        request = check_request(subject=types_pb2.Entity(), subject_token=forged)
        assert code_of(stub.Check, request, metadata=CALLER) == grpc.StatusCode.UNAUTHENTICATED

    def test_act_claim_names_the_actor(self, channel: grpc.Channel) -> None:
        """The token's act claim makes the agent the actor; the agent's limits then apply."""
        stub = authorization_pb2_grpc.AuthorizationServiceStub(channel)
        token = user_token(act={"sub": "agent:helper"})
        response = stub.Check(
            check_request(subject=types_pb2.Entity(), subject_token=token, resource=types_pb2.Resource(kind="tool", id="shell_exec")),
            metadata=CALLER,
        )
        assert not response.allowed
        assert response.denied_party == "actor"

    def test_conflicting_actor_is_refused(self, channel: grpc.Channel) -> None:
        """An actor in the request that contradicts the token's act claim is PERMISSION_DENIED."""
        stub = authorization_pb2_grpc.AuthorizationServiceStub(channel)
        request = check_request(
            subject=types_pb2.Entity(), subject_token=user_token(act={"sub": "agent:helper"}), actor=types_pb2.Entity(id="agent:ops")
        )
        assert code_of(stub.Check, request, metadata=CALLER) == grpc.StatusCode.PERMISSION_DENIED

    def test_actor_exceeding_its_user_is_denied(self, channel: grpc.Channel) -> None:
        """An operator agent acting for a viewer cannot send email: denied, naming the subject."""
        stub = authorization_pb2_grpc.AuthorizationServiceStub(channel)
        response = stub.Check(
            check_request(resource=types_pb2.Resource(kind="tool", id="email_send"), actor=types_pb2.Entity(id="agent:ops")),
            metadata=CALLER,
        )
        assert not response.allowed


def struct(**values: object) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(values)
    return s


class TestEnvelope:
    @pytest.mark.parametrize(
        ("overrides", "field"),
        [
            ({"resource": types_pb2.Resource(kind="data", id="/data/../admin")}, "resource.id"),
            ({"resource": types_pb2.Resource(kind="tool", id="web_search/")}, "resource.id"),
            ({"resource": types_pb2.Resource(kind="tool", id="web_s\u0435arch")}, "resource.id"),
            ({"subject": types_pb2.Entity(id="Viewer")}, "subject.id"),
            ({"resource": types_pb2.Resource(kind="data", id="%2e%2e/secrets")}, "resource.id"),
            ({"subject": types_pb2.Entity(id="dave\nadmin")}, "subject.id"),
            ({"subject": types_pb2.Entity(id="viewer")}, "subject.id"),
            ({"subject": types_pb2.Entity(id="bob", attributes=struct(mfa="true"))}, "subject.attributes.mfa"),
            ({"subject": types_pb2.Entity(id="bob", attributes=struct(amount=math.nan))}, "subject.attributes.amount"),
            ({"resource": types_pb2.Resource(kind="data", id="finance/q1")}, "resource.attributes.classification"),
        ],
    )
    def test_non_canonical_request_is_invalid_argument(self, channel: grpc.Channel, overrides, field) -> None:  # type: ignore[no-untyped-def]
        """Each envelope violation is INVALID_ARGUMENT naming the field."""
        stub = authorization_pb2_grpc.AuthorizationServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.Check(check_request(**overrides), metadata=CALLER)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.details().startswith(field)


def test_rate_limit_exceeded_then_recovered(tmp_path: Path) -> None:
    """Past the subject's burst, checks get RESOURCE_EXHAUSTED with a retry delay; after it, they pass."""
    jwks = FACTORY.write_jwks(tmp_path / "jwks.json")
    settings = security(jwks, subject=RateSettings(rate=5, burst=3))
    with running_server(ROOT / "policies", security=settings) as server, grpc.insecure_channel(server.target) as ch:
        stub = authorization_pb2_grpc.AuthorizationServiceStub(ch)
        for _ in range(3):
            stub.Check(check_request(), metadata=CALLER)
        with pytest.raises(grpc.RpcError) as caught:
            stub.Check(check_request(), metadata=CALLER)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        retry_ms = int(dict(caught.value.trailing_metadata())["retry-after-ms"])
        assert 0 < retry_ms <= 1000
        # another subject is not affected
        assert stub.Check(check_request(subject=types_pb2.Entity(id="carol")), metadata=CALLER) is not None
        time.sleep(retry_ms / 1000 + 0.05)
        assert stub.Check(check_request(), metadata=CALLER).allowed


def test_batch_items_count_against_the_callers_decision_limit(tmp_path: Path) -> None:
    """A BatchCheck or FilterAllowed costs one decision per item: the request limit cannot be
    multiplied by the batch size. A batch larger than the whole budget still passes when the
    budget is full."""
    jwks = FACTORY.write_jwks(tmp_path / "jwks.json")
    settings = security(jwks, decisions=RateSettings(rate=50, burst=150))
    items = [authorization_pb2.BatchCheckItem(action="invoke", resource=types_pb2.Resource(kind="tool", id="web_search"))]
    batch = authorization_pb2.BatchCheckRequest(tenant="acme", subject=types_pb2.Entity(id="dave"), items=items * 100)
    tools = [types_pb2.Resource(kind="tool", id="web_search")] * 40
    filtering = authorization_pb2.FilterAllowedRequest(
        tenant="acme", subject=types_pb2.Entity(id="dave"), action="invoke", candidates=tools)
    with running_server(ROOT / "policies", security=settings) as server, grpc.insecure_channel(server.target) as ch:
        stub = authorization_pb2_grpc.AuthorizationServiceStub(ch)
        assert len(stub.BatchCheck(batch, metadata=CALLER).results) == 100
        assert len(stub.FilterAllowed(filtering, metadata=CALLER).allowed) == 40
        with pytest.raises(grpc.RpcError) as caught:
            stub.BatchCheck(batch, metadata=CALLER)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "decision rate limit" in caught.value.details()
        retry_ms = int(dict(caught.value.trailing_metadata())["retry-after-ms"])
        assert 1000 <= retry_ms <= 2000  # 90 of 100 decisions missing, at 50 per second
        assert stub.Check(check_request(), metadata=CALLER).allowed  # one decision is still there
        time.sleep(3.1)  # the bucket is full again (150)
        whole = authorization_pb2.BatchCheckRequest(
            tenant="acme", subject=types_pb2.Entity(id="dave"), items=items * 1000)
        assert len(stub.BatchCheck(whole, metadata=CALLER).results) == 1000


class TestTransport:
    def test_mtls_identity_and_certificate_reload(self, tmp_path: Path) -> None:
        """With mTLS required, a client certificate is the caller; renewed certificate files are used without restart."""
        pki = make_pki(tmp_path / "pki")
        tls = TlsSettings(cert_file=pki.server_cert, key_file=pki.server_key, client_ca_file=pki.ca_file, require_client_cert=True)
        settings = SecuritySettings(
            callers=CallerAuthSettings(principals={pki.client_identity: frozenset({"authz:check"})}), tls=tls
        )

        def connect(p):  # type: ignore[no-untyped-def]
            credentials = grpc.ssl_channel_credentials(
                p.ca_file.read_bytes(), p.client_key.read_bytes(), p.client_cert.read_bytes()
            )
            return grpc.secure_channel(server.target, credentials, options=(("grpc.ssl_target_name_override", "localhost"),))

        with running_server(ROOT / "policies", security=settings) as server:
            with connect(pki) as ch:
                assert authorization_pb2_grpc.AuthorizationServiceStub(ch).Check(check_request(), timeout=5).allowed
            no_cert = grpc.secure_channel(
                server.target, grpc.ssl_channel_credentials(pki.ca_file.read_bytes()),
                options=(("grpc.ssl_target_name_override", "localhost"),),
            )
            with no_cert:
                assert code_of(authorization_pb2_grpc.AuthorizationServiceStub(no_cert).Check, check_request(), timeout=5) == grpc.StatusCode.UNAVAILABLE
            with grpc.insecure_channel(server.target) as plain:
                assert code_of(authorization_pb2_grpc.AuthorizationServiceStub(plain).Check, check_request(), timeout=5) == grpc.StatusCode.UNAVAILABLE
            renewed = make_pki(tmp_path / "renewed")
            time.sleep(0.01)
            for source, target in (
                (renewed.server_cert, pki.server_cert),
                (renewed.server_key, pki.server_key),
                (renewed.ca_file, pki.ca_file),
            ):
                target.write_bytes(source.read_bytes())
            with connect(renewed) as ch:
                assert authorization_pb2_grpc.AuthorizationServiceStub(ch).Check(check_request(), timeout=5).allowed


class TestPolicyctl:
    def test_token_file_authenticates_policyctl(self, server: ServerHandle, tmp_path: Path) -> None:
        """policyctl sends the token from --token-file; without it the server answers UNAUTHENTICATED (exit 2)."""
        import io

        from policy_engine.cli import policyctl

        token_file = tmp_path / "token"
        token_file.write_text(FACTORY.token(roles=["policy-author"], scope="") + "\n")
        out, err = io.StringIO(), io.StringIO()
        assert policyctl.run(["versions", "--server", server.target, "--token-file", str(token_file)], out, err) == 0
        assert out.getvalue().splitlines()[1].split()[1] == "1"
        out, err = io.StringIO(), io.StringIO()
        assert policyctl.run(["versions", "--server", server.target], out, err) == 2
        assert "UNAUTHENTICATED" in err.getvalue()
        assert token_file.read_text().strip() not in out.getvalue() + err.getvalue()
