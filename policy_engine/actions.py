"""An LLM action (tenant, subject, actor, action, resource, context) bound to a Casbin model.

This is the one place that knows how the service's request maps onto a
model's request tokens, and the one place of the subject-AND-actor rule, so
that the server and `policyctl test` decide identically.

Binding is by token name: `sub` the subject, `dom` the tenant, `obj` the
resource as "<kind>:<id>" (attributes and `kind` readable as `r.obj.<name>`),
`act` the action, `ctx` the context. With an actor, the actor is decided as
the subject of the same request, and the answer is allow only if both are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from policy_engine.engine import Engine, Entity, MatchedRule
from policy_engine.errors import EngineError, ModelError

__all__ = [
    "BINDABLE_TOKENS",
    "Action",
    "ActionDecision",
    "Party",
    "ResourceRef",
    "check_bindable",
    "decide_action",
    "party_entity",
    "resource_key",
]

BINDABLE_TOKENS = frozenset({"sub", "dom", "obj", "act", "ctx"})


@dataclass(frozen=True)
class Party:
    """A subject or an actor: an id and its attributes."""

    id: str
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ResourceRef:
    """A tool, data scope, model or memory: kind, id and attributes."""

    kind: str
    id: str
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return resource_key(self.kind, self.id)


@dataclass(frozen=True)
class Action:
    """One action an LLM application wants to take on someone's behalf."""

    tenant: str
    subject: Party
    action: str
    resource: ResourceRef
    actor: Party | None = None
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ActionDecision:
    """The answer for an Action: `denied_party` is "subject", "actor" or "" when allowed.

    `failure` says what failed when denied: "deny_rule", "no_matching_rule",
    "evaluation_error", or "actor" when the actor was denied ("no_role" and
    "condition" are refinements made by the service's explain step); "" when allowed.
    """

    allowed: bool
    reason: str
    matched: tuple[MatchedRule, ...] = ()
    denied_party: str = ""
    failure: str = ""


def resource_key(kind: str, id: str) -> str:  # noqa: A002
    """The string rules see as r.obj: "tool:web_search", or the bare id when there is no kind."""
    return f"{kind}:{id}" if kind else id


def check_bindable(engine: Engine) -> None:
    """Refuse a model whose request tokens the service cannot fill."""
    unknown = [t for t in engine.request_tokens if t not in BINDABLE_TOKENS]
    if unknown:
        raise ModelError(
            f"request_definition uses {', '.join(unknown)}; "
            f"the service binds only {', '.join(sorted(BINDABLE_TOKENS))}"
        )


def decide_action(
    engine: Engine,
    action: Action,
    *,
    subject: Entity | None = None,
    actor: Entity | None = None,
) -> ActionDecision:
    """Decide an action: the subject, and the actor when there is one, must both be allowed.

    `subject` and `actor` may carry the parties already bound as entities (`party_entity`),
    for callers that decide many actions of the same parties (a batch).
    """
    tokens = engine.request_tokens
    resource = action.resource
    obj = (
        Entity(resource.key, {**resource.attributes, "kind": resource.kind}) if "obj" in tokens else None
    )
    ctx = Entity("", action.context) if "ctx" in tokens else None
    first = _decide_party(
        engine, action, action.subject, subject or party_entity(action.subject), obj, ctx, "subject"
    )
    if not first.allowed or action.actor is None:
        return first
    second = _decide_party(
        engine, action, action.actor, actor or party_entity(action.actor), obj, ctx, "actor"
    )
    if not second.allowed:
        return replace(second, failure="actor")
    return ActionDecision(
        allowed=True,
        reason=f"{first.reason}; actor {action.actor.id!r}: {second.reason}",
        matched=first.matched + second.matched,
    )


def party_entity(party: Party) -> Entity:
    """A subject or actor as the request value rules see as r.sub."""
    return Entity(party.id, party.attributes)


def _decide_party(
    engine: Engine,
    action: Action,
    party: Party,
    entity: Entity,
    obj: Entity | None,
    ctx: Entity | None,
    role: str,
) -> ActionDecision:
    by_token: dict[str, Any] = {
        "sub": entity,
        "dom": action.tenant,
        "obj": obj,
        "act": action.action,
        "ctx": ctx,
    }
    values = [by_token[token] for token in engine.request_tokens]
    try:
        decision = engine.decide(*values)
    except EngineError as exc:
        return ActionDecision(
            allowed=False,
            reason=f"{role} {party.id!r}: evaluation error: {exc}",
            denied_party=role,
            failure="evaluation_error",
        )
    if decision.allowed:
        rule = decision.matched[0].text if decision.matched else "the policy effect"
        return ActionDecision(allowed=True, reason=f"allowed by {rule}", matched=decision.matched)
    if decision.matched:
        why, failure = f"denied by {decision.matched[0].text}", "deny_rule"
    else:
        why, failure = "no rule allows it", "no_matching_rule"
    return ActionDecision(
        allowed=False,
        reason=f"{role} {party.id!r} is not allowed: {why}",
        matched=decision.matched,
        denied_party=role,
        failure=failure,
    )
