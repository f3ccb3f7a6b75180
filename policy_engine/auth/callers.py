"""Authenticate the service's own callers: a bearer JWT, or a verified mTLS client certificate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from policy_engine.auth.authorizer import scopes_for
from policy_engine.auth.peers import peer_identity
from policy_engine.auth.principal import ANONYMOUS, Principal
from policy_engine.auth.tokens import TokenVerifier
from policy_engine.errors import UnauthenticatedError

__all__ = ["ALL_SCOPES", "CallerAuthenticator"]

ALL_SCOPES = frozenset({"authz:check", "authz:explain", "policy:read", "policy:write", "policy:activate"})


class CallerAuthenticator:
    """Turns a call's credentials into a Principal, or refuses it.

    With neither tokens nor client certificates configured, every caller is
    the anonymous principal with every scope: that mode is only allowed on
    a loopback address (or with --insecure).
    """

    def __init__(
        self,
        verifier: TokenVerifier | None = None,
        *,
        mtls: bool = False,
        roles_claim: str = "roles",
        role_scopes: Mapping[str, frozenset[str]] | None = None,
        principals: Mapping[str, frozenset[str]] | None = None,
        peer_identity_source: str = "uri_san",
    ) -> None:
        self._verifier = verifier
        self._mtls = mtls
        self._peer_identity_source = peer_identity_source
        self._roles_claim = roles_claim
        self._role_scopes = dict(role_scopes or {})
        self._principals = dict(principals or {})

    @property
    def enabled(self) -> bool:
        return self._verifier is not None or self._mtls

    def authenticate(
        self, authorization: str | None, peer: Mapping[str, Sequence[bytes]] | None
    ) -> Principal:
        """`authorization` is the metadata value ("Bearer <jwt>"); `peer` the call's TLS auth
        context (its client certificate is read only when no token is sent)."""
        if not self.enabled:
            return Principal(ANONYMOUS.id, ALL_SCOPES, method="none")
        if authorization is not None and self._verifier is not None:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise UnauthenticatedError("authorization metadata must be 'Bearer <token>'")
            verified = self._verifier.verify(token.strip())
            claims = verified.claims
            return Principal(
                id=verified.subject,
                scopes=scopes_for(
                    verified.subject,
                    _token_scopes(claims),
                    _strings(claims.get(self._roles_claim)),
                    self._role_scopes,
                    self._principals,
                ),
                method="jwt",
                claims=claims,
            )
        identity = peer_identity(peer, self._peer_identity_source) if peer and self._mtls else None
        if identity is not None:
            return Principal(
                id=identity,
                scopes=scopes_for(identity, frozenset(), frozenset(), {}, self._principals),
                method="mtls",
            )
        raise UnauthenticatedError("credentials required: a bearer token in 'authorization' metadata")


def _token_scopes(claims: Mapping[str, object]) -> frozenset[str]:
    scope = claims.get("scope")
    if isinstance(scope, str):
        return frozenset(scope.split())
    return _strings(claims.get("scp"))


def _strings(value: object) -> frozenset[str]:
    if isinstance(value, list):
        return frozenset(v for v in value if isinstance(v, str))
    return frozenset()
