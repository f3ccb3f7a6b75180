"""The system policy: which scopes may call which RPC, decided by our own engine (dogfooding)."""

from __future__ import annotations

from collections.abc import Mapping

from policy_engine.auth.principal import Principal
from policy_engine.engine import Engine, Entity

__all__ = ["EXPLAIN_SCOPES", "SYSTEM_MODEL", "SYSTEM_RULES", "RpcAuthorizer", "scopes_for", "sees_policy_text"]

# Who may read why: the deciding rule's text, explanations with file and line, listing details.
# `policy:read` may read whole versions already, so an explanation tells it nothing new.
EXPLAIN_SCOPES = frozenset({"authz:explain", "policy:read"})

SYSTEM_MODEL = """
[request_definition]
r = sub, obj

[policy_definition]
p = scope, obj

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = p.scope in r.sub.scopes && keyMatch(r.obj, p.obj)
"""

_AUTHZ = "/policy_engine.v1.AuthorizationService"
_ADMIN = "/policy_engine.v1.PolicyAdminService"
SYSTEM_RULES = f"""
p, authz:check, {_AUTHZ}/*
p, policy:read, {_ADMIN}/ListVersions
p, policy:read, {_ADMIN}/GetVersion
p, policy:read, {_ADMIN}/DiffVersions
p, policy:read, {_ADMIN}/ListActivations
p, policy:read, {_ADMIN}/WatchActivations
p, policy:read, {_ADMIN}/QueryDecisions
p, policy:read, {_ADMIN}/GetDecision
p, policy:read, {_ADMIN}/ReplayDecisions
p, policy:read, {_ADMIN}/VerifyDecisions
p, policy:read, {_ADMIN}/ListSecurityEvents
p, policy:read, /grpc.reflection.v1alpha.ServerReflection/*
p, policy:read, /grpc.reflection.v1.ServerReflection/*
p, policy:write, {_ADMIN}/PushVersion
p, policy:activate, {_ADMIN}/ActivateVersion
p, policy:activate, {_ADMIN}/Rollback
p, policy:activate, {_ADMIN}/ReleaseQuarantine
p, policy:activate, {_ADMIN}/SetLegalHold
"""
ACTIVATE_METHOD = f"{_ADMIN}/ActivateVersion"


def scopes_for(
    principal_id: str,
    granted: frozenset[str],
    roles: frozenset[str],
    role_scopes: Mapping[str, frozenset[str]],
    principal_scopes: Mapping[str, frozenset[str]],
) -> frozenset[str]:
    """A caller's scopes: those its token grants, those of its roles, those configured for its id."""
    scopes = set(granted) | set(principal_scopes.get(principal_id, ()))
    for role in roles:
        scopes |= role_scopes.get(role, frozenset())
    return frozenset(scopes)


def sees_policy_text(principal: Principal) -> bool:
    """May this caller read rule text and explanations? The others get reason codes only."""
    return not EXPLAIN_SCOPES.isdisjoint(principal.scopes)


class RpcAuthorizer:
    """May this principal call this method? The answer comes from SYSTEM_RULES."""

    def __init__(self, rules: str = SYSTEM_RULES) -> None:
        self._engine = Engine.from_text(SYSTEM_MODEL, rules)

    def allowed(self, principal: Principal, method: str) -> bool:
        subject = Entity(principal.id, {"scopes": tuple(sorted(principal.scopes))})
        return self._engine.enforce(subject, method)
