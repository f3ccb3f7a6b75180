"""End users from their own verified tokens, and agents from the token's RFC 8693 `act` claim.

This is what stops a prompt-injected model, or a confused backend, from
claiming to be someone else: with a subject token the subject's id and
attributes come from the token, not from the request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from policy_engine.actions import Party
from policy_engine.auth.tokens import TokenVerifier
from policy_engine.errors import InvalidRequestError, PermissionDeniedError, UnsupportedError

__all__ = ["ClaimMapping", "SubjectTokenResolver", "VerifiedParties"]


@dataclass(frozen=True)
class ClaimMapping:
    """An attribute read from a claim; with `contains`, a bool: does the claim's list hold it."""

    claim: str
    contains: str | None = None

    def read(self, claims: Mapping[str, Any]) -> Any:
        value = claims.get(self.claim)
        if self.contains is None:
            return value
        return isinstance(value, list) and self.contains in value


@dataclass(frozen=True)
class VerifiedParties:
    subject: Party
    actor: Party | None
    verified: bool


@dataclass
class SubjectTokenResolver:
    """Builds the subject (and actor) of a check from a subject token, or checks one may be absent."""

    verifier: TokenVerifier | None = None
    attributes: Mapping[str, ClaimMapping] = field(default_factory=dict)
    tenant_claim: str | None = "tenant"
    verified_tenants: frozenset[str] = frozenset()

    def resolve(
        self, tenant: str, subject: Party, actor: Party | None, token: str
    ) -> VerifiedParties:
        if not token:
            if tenant in self.verified_tenants:
                raise PermissionDeniedError(
                    f"subject_token: tenant {tenant!r} requires a verified subject token"
                )
            return VerifiedParties(subject, actor, verified=False)
        if self.verifier is None:
            raise UnsupportedError("subject_token: end-user tokens are not configured on this server")
        verified = self.verifier.verify(token)
        claims = verified.claims
        if subject.id and subject.id != verified.subject:
            raise PermissionDeniedError("subject.id: does not match the subject token")
        if self.tenant_claim is not None and self.tenant_claim in claims:
            if claims[self.tenant_claim] != tenant:
                raise PermissionDeniedError("tenant: the subject token is for another tenant")
        elif self.tenant_claim is not None and tenant in self.verified_tenants:
            raise PermissionDeniedError("subject_token: the token does not name its tenant")
        attributes = {name: mapping.read(claims) for name, mapping in self.attributes.items()}
        attributes = {name: value for name, value in attributes.items() if value is not None}
        return VerifiedParties(
            subject=Party(verified.subject, attributes),
            actor=_actor(claims, actor),
            verified=True,
        )


def _actor(claims: Mapping[str, Any], requested: Party | None) -> Party | None:
    act = claims.get("act")
    if act is None:
        return requested
    if not isinstance(act, dict) or not isinstance(act.get("sub"), str) or not act["sub"]:
        raise InvalidRequestError("subject_token", "the act claim has no subject")
    if requested is not None and requested.id != act["sub"]:
        raise PermissionDeniedError("actor.id: conflicts with the subject token's act claim")
    return Party(act["sub"], requested.attributes if requested is not None else {})
