"""End users from their own verified tokens, and agents from the token's RFC 8693 `act` claim.

This is what stops a prompt-injected model, or a confused backend, from
claiming to be someone else: with a subject token the subject's id and
attributes come from the token, not from the request.

A delegation chain is read from nested `act` claims (RFC 8693 4.1: the
outermost `act` is the current actor, each nested one an earlier actor).
`carol -> bot3 -> bot2` is `{"sub": "carol", "act": {"sub": "bot2", "act":
{"sub": "bot3"}}}`: bot2 is the actor, bot3 a delegate. Every actor of the
chain is decided as the actor is (as the subject of the same request), in
that order: the current actor first, then each earlier one, most recent
first; all must be allowed. A chain of more than MAX_DELEGATION_DEPTH actors
is refused, as is a hop without a safe `sub` (auth/identifiers.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from policy_engine.actions import Party
from policy_engine.auth.identifiers import identity_problem
from policy_engine.auth.tokens import TokenVerifier
from policy_engine.errors import (
    InvalidRequestError,
    PermissionDeniedError,
    UnauthenticatedError,
    UnsupportedError,
)

__all__ = ["MAX_DELEGATION_DEPTH", "ClaimMapping", "SubjectTokenResolver", "VerifiedParties"]

# Actors in one delegation chain, the current actor included.
MAX_DELEGATION_DEPTH = 4


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
    # The earlier actors of the token's delegation chain, the most recent first.
    delegates: tuple[Party, ...] = ()


@dataclass
class SubjectTokenResolver:
    """Builds the subject (and actor) of a check from a subject token, or checks one may be absent."""

    verifier: TokenVerifier | None = None
    attributes: Mapping[str, ClaimMapping] = field(default_factory=dict)
    tenant_claim: str | None = "tenant"
    verified_tenants: frozenset[str] = frozenset()

    def subject_of(self, subject_id: str, token: str) -> str:
        """The id a request's rate limit counts: its subject token's verified `sub` when it
        carries one that verifies, else `subject_id` (a token that fails is refused later,
        by resolve)."""
        if not token or self.verifier is None:
            return subject_id
        try:
            return self.verifier.verify(token).subject
        except UnauthenticatedError:
            return subject_id

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
        chain = _chain(claims)
        if not chain:
            return VerifiedParties(Party(verified.subject, attributes), actor, verified=True)
        if actor is not None and actor.id != chain[0]:
            raise PermissionDeniedError("actor.id: conflicts with the subject token's act claim")
        return VerifiedParties(
            subject=Party(verified.subject, attributes),
            actor=Party(chain[0], actor.attributes if actor is not None else {}),
            verified=True,
            delegates=tuple(Party(hop) for hop in chain[1:]),
        )


def _chain(claims: Mapping[str, Any]) -> list[str]:
    """The actors of the token's nested `act` claims, the current one first."""
    chain: list[str] = []
    act = claims.get("act")
    where = "act"
    while act is not None:
        if len(chain) == MAX_DELEGATION_DEPTH:
            raise InvalidRequestError(
                "subject_token", f"the act claim nests more than {MAX_DELEGATION_DEPTH} actors"
            )
        if not isinstance(act, dict) or not isinstance(act.get("sub"), str) or not act["sub"]:
            raise InvalidRequestError("subject_token", f"the {where} claim has no subject")
        problem = identity_problem(act["sub"])
        if problem is not None:
            raise InvalidRequestError("subject_token", f"{where}.sub {problem}")
        chain.append(act["sub"])
        act = act.get("act")
        where += ".act"
    return chain
