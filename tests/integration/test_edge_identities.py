"""Identities at the edge, replayed against a real server: certificates, metadata, delegation, odd claims."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509

from policy_engine.config import CallerAuthSettings, SecuritySettings, TlsSettings
from policy_engine.testing import ServerHandle, running_server
from policy_engine.v1 import admin_pb2, admin_pb2_grpc, authorization_pb2, authorization_pb2_grpc, types_pb2
from tests.integration.test_edge_security import ROOT, caller, bearer, check_request, code_of, security, user_token
from tests.support.credentials import make_pki
from tests.unit.test_tokens import FACTORY

ADMIN_SCOPES = frozenset({"authz:check", "policy:read", "policy:write", "policy:activate"})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    jwks = FACTORY.write_jwks(tmp_path_factory.mktemp("keys") / "jwks.json")
    with running_server(ROOT / "policies", security=security(jwks)) as handle:
        yield handle


@pytest.fixture(scope="module")
def stub(server: ServerHandle) -> Iterator[authorization_pb2_grpc.AuthorizationServiceStub]:
    with grpc.insecure_channel(server.target) as channel:
        yield authorization_pb2_grpc.AuthorizationServiceStub(channel)


def _mtls_channel(target: str, pki) -> grpc.Channel:  # type: ignore[no-untyped-def]
    credentials = grpc.ssl_channel_credentials(
        pki.ca_file.read_bytes(), pki.client_key.read_bytes(), pki.client_cert.read_bytes()
    )
    return grpc.secure_channel(target, credentials, options=(("grpc.ssl_target_name_override", "localhost"),))


class TestCertificateIdentity:
    @pytest.mark.parametrize(
        "sans",
        [
            [x509.DNSName("client.acme.test")],
            [],
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
            [x509.RFC822Name("spiffe@acme.test")],
        ],
        ids=["dns-san-only", "no-san", "ip-san-only", "email-san-only"],
    )
    def test_common_name_never_names_the_caller(self, tmp_path: Path, sans: list[x509.GeneralName]) -> None:
        """A CN of spiffe://acme/admin without a URI SAN gets no admin scopes: UNAUTHENTICATED."""
        pki = make_pki(tmp_path / "pki", "spiffe://acme/admin", client_common_name="spiffe://acme/admin", client_sans=sans)
        tls = TlsSettings(pki.server_cert, pki.server_key, pki.ca_file, require_client_cert=True)
        settings = SecuritySettings(callers=CallerAuthSettings(principals={"spiffe://acme/admin": ADMIN_SCOPES}), tls=tls)
        with running_server(ROOT / "policies", security=settings) as server, _mtls_channel(server.target, pki) as ch:
            admin = admin_pb2_grpc.PolicyAdminServiceStub(ch)
            with pytest.raises(grpc.RpcError) as caught:
                admin.ListVersions(admin_pb2.ListVersionsRequest(policy_set="default"), timeout=5)
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "SAN" in caught.value.details()
            push = admin_pb2.PushVersionRequest(policy_set="default", activate=True, content=admin_pb2.BundleContent(model="x"))
            assert code_of(admin.PushVersion, push, timeout=5) == grpc.StatusCode.UNAUTHENTICATED

    def test_two_uri_sans_are_ambiguous(self, tmp_path: Path) -> None:
        """A certificate naming two URI SANs (one of them admin) is UNAUTHENTICATED, not either identity."""
        sans = [x509.UniformResourceIdentifier("spiffe://acme/backend"), x509.UniformResourceIdentifier("spiffe://acme/admin")]
        pki = make_pki(tmp_path / "pki", client_sans=sans)
        tls = TlsSettings(pki.server_cert, pki.server_key, pki.ca_file, require_client_cert=True)
        settings = SecuritySettings(
            callers=CallerAuthSettings(principals={"spiffe://acme/admin": ADMIN_SCOPES, "spiffe://acme/backend": ADMIN_SCOPES}),
            tls=tls,
        )
        with running_server(ROOT / "policies", security=settings) as server, _mtls_channel(server.target, pki) as ch:
            stub = authorization_pb2_grpc.AuthorizationServiceStub(ch)
            assert code_of(stub.Check, check_request(), timeout=5) == grpc.StatusCode.UNAUTHENTICATED

    def test_common_name_only_when_configured(self, tmp_path: Path) -> None:
        """With tls.client_identity: common_name the CN names the caller (an explicit, opt-in choice)."""
        pki = make_pki(tmp_path / "pki", client_common_name="legacy-backend", client_sans=[x509.DNSName("x.test")])
        tls = TlsSettings(pki.server_cert, pki.server_key, pki.ca_file, require_client_cert=True, client_identity="common_name")
        settings = SecuritySettings(callers=CallerAuthSettings(principals={"legacy-backend": frozenset({"authz:check"})}), tls=tls)
        with running_server(ROOT / "policies", security=settings) as server, _mtls_channel(server.target, pki) as ch:
            assert authorization_pb2_grpc.AuthorizationServiceStub(ch).Check(check_request(), timeout=5).allowed


class TestAuthorizationMetadata:
    @pytest.mark.parametrize("admin_last", [True, False])
    def test_two_authorization_entries_are_refused(self, server: ServerHandle, admin_last: bool) -> None:
        """Two `authorization` entries (a check token and an admin token) are UNAUTHENTICATED, in either order."""
        admin_token = FACTORY.token(sub="root", scope="policy:read policy:write policy:activate authz:check")
        entries = [caller()[0], bearer(admin_token)[0]]
        if not admin_last:
            entries.reverse()
        with grpc.insecure_channel(server.target) as channel:
            admin = admin_pb2_grpc.PolicyAdminServiceStub(channel)
            with pytest.raises(grpc.RpcError) as caught:
                admin.ListVersions(admin_pb2.ListVersionsRequest(policy_set="default"), metadata=tuple(entries))
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "authorization" in caught.value.details()
            stub = authorization_pb2_grpc.AuthorizationServiceStub(channel)
            assert code_of(stub.Check, check_request(), metadata=tuple(entries)) == grpc.StatusCode.UNAUTHENTICATED
            assert code_of(stub.Check, check_request(), metadata=(caller()[0], caller()[0])) == grpc.StatusCode.UNAUTHENTICATED
            assert stub.Check(check_request(), metadata=caller()).allowed


def chain_token(*actors: str, subject: str = "bob") -> str:
    """A subject token whose act claims name `actors`, the current actor first (RFC 8693 nesting)."""
    act: dict[str, object] | None = None
    for actor in reversed(actors):
        act = {"sub": actor, **({"act": act} if act is not None else {})}
    return user_token(sub=subject, **({"act": act} if act is not None else {}))


def tool(name: str) -> types_pb2.Resource:
    return types_pb2.Resource(kind="tool", id=name)


class TestDelegationChain:
    def test_every_actor_of_the_chain_must_be_allowed(self, stub: authorization_pb2_grpc.AuthorizationServiceStub) -> None:
        """bob -> agent:helper -> agent:ops on sql_query: ops may, helper (a delegate) may not: denied."""
        direct = check_request(subject=types_pb2.Entity(), subject_token=chain_token("agent:ops"), resource=tool("sql_query"))
        assert stub.Check(direct, metadata=caller()).allowed
        chained = check_request(
            subject=types_pb2.Entity(), subject_token=chain_token("agent:ops", "agent:helper"), resource=tool("sql_query")
        )
        response = stub.Check(chained, metadata=caller())
        assert not response.allowed
        assert response.denied_party == "actor"
        assert response.failure == types_pb2.FAILURE_ACTOR

    def test_denied_delegate_at_any_depth(self, stub: authorization_pb2_grpc.AuthorizationServiceStub) -> None:
        """A denied actor anywhere in a four-hop chain denies; the same chain without it allows."""
        allowed = ("agent:ops", "agent:ops", "agent:ops", "agent:ops")
        request = check_request(subject=types_pb2.Entity(), subject_token=chain_token(*allowed), resource=tool("sql_query"))
        assert stub.Check(request, metadata=caller()).allowed
        for position in range(4):
            actors = list(allowed)
            actors[position] = "agent:helper"
            request = check_request(subject=types_pb2.Entity(), subject_token=chain_token(*actors), resource=tool("sql_query"))
            assert not stub.Check(request, metadata=caller()).allowed, actors

    def test_chain_applies_to_batch_filter_and_list(self, stub: authorization_pb2_grpc.AuthorizationServiceStub) -> None:
        """BatchCheck, FilterAllowed and ListAllowed decide every actor of the chain too."""
        token = chain_token("agent:ops", "agent:helper")
        batch = stub.BatchCheck(
            authorization_pb2.BatchCheckRequest(
                tenant="acme", subject_token=token,
                items=[authorization_pb2.BatchCheckItem(action="invoke", resource=tool(t)) for t in ("sql_query", "web_search")],
            ),
            metadata=caller(),
        )
        assert [r.allowed for r in batch.results] == [False, True]
        filtered = stub.FilterAllowed(
            authorization_pb2.FilterAllowedRequest(
                tenant="acme", subject_token=token, action="invoke", candidates=[tool("sql_query"), tool("web_search")]
            ),
            metadata=caller(),
        )
        assert [c.id for c in filtered.allowed] == ["web_search"]
        listed = stub.ListAllowed(
            authorization_pb2.ListAllowedRequest(tenant="acme", subject_token=token, action="invoke", kind="tool"),
            metadata=caller(),
        )
        assert "sql_query" not in listed.resource_ids and "web_search" in listed.resource_ids

    @pytest.mark.parametrize(
        ("actors", "message"),
        [
            (("agent:ops",) * 5, "more than 4"),
            (("agent:ops", "agent:help\u200ber"), "act.act.sub"),
            (("agent:ops", "admin"), "role"),
            (("agent:ops", "*"), "wildcard"),
        ],
        ids=["too-deep", "invisible-delegate", "delegate-named-as-a-role", "wildcard-delegate"],
    )
    def test_malformed_chain_is_invalid_argument(
        self, stub: authorization_pb2_grpc.AuthorizationServiceStub, actors: tuple[str, ...], message: str
    ) -> None:
        """A chain too deep, or with a hop whose sub is unsafe or names a role, is INVALID_ARGUMENT naming subject_token."""
        request = check_request(subject=types_pb2.Entity(), subject_token=chain_token(*actors), resource=tool("web_search"))
        with pytest.raises(grpc.RpcError) as caught:
            stub.Check(request, metadata=caller())
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.details().startswith("subject_token")
        assert message in caught.value.details()


SUBJECT_ATTACKS = {
    "exp of 10**400": lambda: user_token(exp=10**400),
    "iat of 10**400": lambda: user_token(iat=10**400),
    "exp negative": lambda: user_token(exp=-5),
    "exp a string": lambda: user_token(exp="4102444800"),
    "exp fractional, twenty years out": lambda: user_token(exp=time.time() + 20 * 365 * 86400.5),
    "lives ten years": lambda: user_token(exp=int(time.time()) + 10 * 365 * 86400),
    "no iat, exp in two days": lambda: user_token(iat=None, exp=int(time.time()) + 2 * 86400),
    "sub with a zero-width space": lambda: user_token(sub="bob\u200b"),
    "sub with a Cyrillic o": lambda: user_token(sub="b\u043eb"),
    "sub fullwidth": lambda: user_token(sub="\uff42\uff4f\uff42"),
}


@pytest.mark.parametrize("attack", sorted(SUBJECT_ATTACKS))
def test_odd_subject_token_is_unauthenticated(stub: authorization_pb2_grpc.AuthorizationServiceStub, attack: str) -> None:
    """A validly signed subject token with an odd date or an unsafe sub is UNAUTHENTICATED, never INTERNAL or a new user."""
    request = check_request(subject=types_pb2.Entity(), subject_token=SUBJECT_ATTACKS[attack](), resource=tool("web_search"))
    with pytest.raises(grpc.RpcError) as caught:
        stub.Check(request, metadata=caller())
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "claim" in caught.value.details()


def test_subject_token_within_its_lifetime_is_served(stub: authorization_pb2_grpc.AuthorizationServiceStub) -> None:
    """A day-long subject token is within the default bound (24 h) and decides as bob."""
    now = int(time.time())
    token = user_token(iat=now, exp=now + 86400)
    request = check_request(subject=types_pb2.Entity(), subject_token=token, resource=tool("shell_exec"))
    assert stub.Check(request, metadata=caller()).allowed

