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

import functools
import operator
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from policy_engine.engine import Decision, Engine, Entity, MatchedRule, key_part
from policy_engine.errors import EngineError, ModelError

__all__ = [
    "BINDABLE_TOKENS",
    "NO_ATTRIBUTES",
    "Action",
    "ActionBinder",
    "ActionDecision",
    "Party",
    "ResourceRef",
    "check_bindable",
    "decide_action",
    "party_entity",
    "resource_key",
]

BINDABLE_TOKENS = frozenset({"sub", "dom", "obj", "act", "ctx"})


# Parties and resources are built per request item: immutable records that are cheap to make.
# The attributes (or context) of whatever carries none: one shared, read-only empty mapping.
NO_ATTRIBUTES: Mapping[str, Any] = MappingProxyType({})


class Party(NamedTuple):
    """A subject or an actor: an id and its attributes."""

    id: str
    attributes: Mapping[str, Any] = NO_ATTRIBUTES


class ResourceRef(NamedTuple):
    """A tool, data scope, model or memory: kind, id and attributes."""

    kind: str
    id: str
    attributes: Mapping[str, Any] = NO_ATTRIBUTES

    @property
    def key(self) -> str:
        return resource_key(self.kind, self.id)


class Action(NamedTuple):
    """One action an LLM application wants to take on someone's behalf."""

    tenant: str
    subject: Party
    action: str
    resource: ResourceRef
    actor: Party | None = None
    context: Mapping[str, Any] = NO_ATTRIBUTES


class ActionDecision(NamedTuple):
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

    `subject` and `actor` may carry the parties already bound as entities (`party_entity`).
    """
    binder = ActionBinder(
        engine, action.tenant, action.subject, action.actor, subject_entity=subject, actor_entity=actor
    )
    return binder.decide(action.action, action.resource, action.context)


def party_entity(party: Party) -> Entity:
    """A subject or actor as the request value rules see as r.sub."""
    return Entity(party.id, party.attributes)


class ActionBinder:
    """One subject and actor in one tenant, bound once, deciding many actions.

    A batch, a filter or a listing decides many actions of the same parties: their
    entities and the model's token layout are prepared here once, so each action only
    adds its resource, its name and its context.
    """

    __slots__ = (
        "_actor_decisions", "_actor_entity", "_actor_part", "_engine", "_layout", "_pick", "_subject_decisions",
        "_delegates", "_subject_entity", "_subject_part", "_tenant_part", "actor", "subject", "tenant",
    )

    def __init__(
        self,
        engine: Engine,
        tenant: str,
        subject: Party,
        actor: Party | None = None,
        *,
        subject_entity: Entity | None = None,
        actor_entity: Entity | None = None,
        delegates: tuple[Party, ...] = (),
    ) -> None:
        """`delegates`: the earlier actors of a delegation chain (the most recent first), each
        decided as the actor is, after it; every one must be allowed too."""
        self._engine = engine
        self.tenant = tenant
        self.subject = subject
        self.actor = actor
        self._subject_entity = subject_entity or party_entity(subject)
        self._actor_entity = (actor_entity or party_entity(actor)) if actor is not None else None
        self._layout = _layout(engine.request_tokens)
        self._pick = _picker(self._layout)
        # The engine's cache key is assembled from parts, the parties' and tenant's made here once.
        self._subject_part = key_part(self._subject_entity)
        self._actor_part = key_part(self._actor_entity) if self._actor_entity is not None else None
        self._tenant_part = key_part(tenant)
        # The engine hands out one Decision object per outcome (a rule, or no rule), and what
        # a party's ActionDecision says depends only on it: made once per binder and outcome.
        self._subject_decisions: dict[int, tuple[Decision, ActionDecision]] = {}
        self._actor_decisions: dict[int, tuple[Decision, ActionDecision]] = {}
        self._delegates = tuple(
            (party, entity, key_part(entity), {})
            for party in delegates
            for entity in (party_entity(party),)
        )

    def decide(self, action: str, resource: ResourceRef, context: Mapping[str, Any]) -> ActionDecision:
        """The subject, and the actor when there is one, must both be allowed."""
        layout = self._layout
        obj = _resource_entity(resource) if _OBJ in layout else None
        ctx = Entity("", context) if _CTX in layout else None
        # slots: 0 the party, 1 the tenant, 2 the resource, 3 the action, 4 the context
        slots = [self._subject_entity, self.tenant, obj, action, ctx]
        parts = [
            self._subject_part, self._tenant_part, key_part(obj) if obj is not None else None,
            key_part(action), key_part(ctx) if ctx is not None else None,
        ]
        first = self._decide_party(slots, parts, self.subject, "subject", self._subject_decisions)
        actor = self.actor
        if not first.allowed or actor is None:
            return first
        slots[0], parts[0] = self._actor_entity, self._actor_part
        second = self._decide_party(slots, parts, actor, "actor", self._actor_decisions)
        if not second.allowed:
            return second._replace(failure="actor")
        for party, entity, part, made in self._delegates:
            slots[0], parts[0] = entity, part
            earlier = self._decide_party(slots, parts, party, "actor", made)
            if not earlier.allowed:
                return earlier._replace(failure="actor")
        return ActionDecision(
            True, f"{first.reason}; actor {actor.id!r}: {second.reason}", first.matched + second.matched
        )

    def _decide_party(
        self,
        slots: list[Any],
        parts: list[Any],
        party: Party,
        role: str,
        made: dict[int, tuple[Decision, ActionDecision]],
    ) -> ActionDecision:
        pick = self._pick
        key = pick(parts)
        try:
            decision = self._engine.decide_keyed(None if None in key else key, pick(slots))
        except EngineError as exc:
            return ActionDecision(False, f"{role} {party.id!r}: evaluation error: {exc}", (), role, "evaluation_error")
        known = made.get(id(decision))
        if known is not None and known[0] is decision:
            return known[1]
        answer = _party_decision(decision, party, role)
        if len(made) < _MADE_LIMIT:
            made[id(decision)] = (decision, answer)  # holds the decision: its id is not reused meanwhile
        return answer


def _party_decision(decision: Decision, party: Party, role: str) -> ActionDecision:
    """The engine's decision for one party, as the ActionDecision the service reports."""
    matched = decision.matched
    if decision.allowed:
        rule = matched[0].text if matched else "the policy effect"
        return ActionDecision(True, f"allowed by {rule}", matched)
    if matched:
        why, failure = f"denied by {matched[0].text}", "deny_rule"
    else:
        why, failure = "no rule allows it", "no_matching_rule"
    return ActionDecision(False, f"{role} {party.id!r} is not allowed: {why}", matched, role, failure)


_TOKEN_SLOTS = {"sub": 0, "dom": 1, "obj": 2, "act": 3, "ctx": 4}
_OBJ, _CTX = _TOKEN_SLOTS["obj"], _TOKEN_SLOTS["ctx"]
# Outcomes a binder remembers per party: about one per deciding rule, so rarely reached.
_MADE_LIMIT = 1024


@functools.cache
def _layout(request_tokens: tuple[str, ...]) -> tuple[int, ...]:
    """The slot of each request token, in the model's order (models have few shapes)."""
    return tuple(_TOKEN_SLOTS[token] for token in request_tokens)


@functools.cache
def _picker(layout: tuple[int, ...]) -> Callable[[list[Any]], tuple[Any, ...]]:
    """The request values, in the model's order, from the slots."""
    if len(layout) == 1:  # itemgetter of one index returns the item, not a 1-tuple
        index = layout[0]
        return lambda slots: (slots[index],)
    return operator.itemgetter(*layout)

# Most resources carry no attributes and recur across requests: their entity (immutable, and
# remembering its own cache key) is kept, bounded; forgetting one only means building it again.
_RESOURCE_ENTITIES: dict[tuple[str, str], Entity] = {}
_RESOURCE_ENTITIES_LIMIT = 65_536


def _resource_entity(resource: ResourceRef) -> Entity:
    if resource.attributes:
        return Entity(resource.key, {**resource.attributes, "kind": resource.kind})
    memo_key = (resource.kind, resource.id)
    entity = _RESOURCE_ENTITIES.get(memo_key)
    if entity is None:
        if len(_RESOURCE_ENTITIES) >= _RESOURCE_ENTITIES_LIMIT:
            _RESOURCE_ENTITIES.clear()
        entity = _RESOURCE_ENTITIES[memo_key] = Entity(resource.key, {"kind": resource.kind})
    return entity
