"""ListAllowed: what a subject (and actor) may do with resources of one kind, without candidates.

Safety first: nothing is listed that Check would deny.

- A concrete id ("tool:web_search" in some rule) is listed only when the
  engine allows it, decided exactly as Check decides it, with no resource
  attributes. Without attributes, a rule that reads one (r.obj.classification)
  fails to evaluate, which is a denial; so an id allowed here never depended
  on a resource attribute, and Check allows it whatever attributes it carries.
- A pattern "<kind>:<prefix>*" is listed only when every key starting with
  <prefix> is allowed. That is proven in two steps. Structurally: every rule
  (of any subject, allow or deny) whose object could match a key in that range
  matches all of them or none, i.e. it is a literal or a "<p>*" pattern whose
  <p> is a prefix of <prefix>, and it reads r.obj only through attributes; so
  the engine treats every key of the range alike, except that globMatch's "*"
  stops at "/". Then by deciding two probe keys, one without and one with a
  "/" after the prefix: both allowed means every key of the range is.

Both steps need the model's matcher to read the resource key only by comparing
r.obj with p.obj (equality, keyMatch, keyMatch2/3, globMatch, regexMatch) and
the resource's attributes as r.obj.<name>, as policies/default/model.conf does.
With any other use of r.obj or p.obj in the matcher (a literal compared with
r.obj, a resource role g2(r.obj, p.obj), a string method) no pattern is listed.

Anything that cannot be proven is left out and the answer is marked partial,
with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from policy_engine import limits
from policy_engine.actions import Action, ActionBinder, Party, ResourceRef
from policy_engine.engine import Engine
from policy_engine.errors import InvalidRequestError
from policy_engine.service.rules import (
    PolicyRule,
    RuleIndex,
    comparable,
    is_literal,
    literal_prefix,
    prefix_of_pattern,
    reads_object_beyond_attributes,
    rule_index,
)
from policy_engine.service.validation import validate_action

__all__ = ["Listing", "list_allowed"]

_PROBE = "_probe_"
# Two keys per pattern: globMatch's "*" does not cross "/", the other functions' does.
_PROBE_SUFFIXES = (_PROBE, f"{_PROBE}/{_PROBE}")
_MAX_REASONS = 20


@dataclass(frozen=True)
class Listing:
    """Allowed resource ids (without the kind), provable prefix patterns, and why it may be partial."""

    resource_ids: tuple[str, ...]
    patterns: tuple[str, ...]
    partial_reasons: tuple[str, ...] = ()

    @property
    def partial(self) -> bool:
        return bool(self.partial_reasons)


def list_allowed(
    engine: Engine,
    *,
    tenant: str,
    subject: Party,
    actor: Party | None,
    action: str,
    kind: str,
    context: Mapping[str, Any] | None = None,
    delegates: tuple[Party, ...] = (),
) -> Listing:
    """List what `subject` (and `actor`) may `action` among resources of `kind` (see module doc)."""
    index = rule_index(engine)
    prefix = f"{kind}:"
    context = context or {}
    subjects = {subject.id} | index.roles(subject.id, None)
    reasons: list[str] = []

    binder = ActionBinder(engine, tenant, subject, actor, delegates=delegates)

    def decide(resource_id: str) -> tuple[bool, str]:
        candidate = Action(tenant, subject, action, ResourceRef(kind, resource_id), actor, context)
        try:
            validate_action(candidate)
        except InvalidRequestError:
            return False, "invalid"
        decision = binder.decide(action, candidate.resource, context)
        return decision.allowed, decision.failure

    def grants(rule: PolicyRule) -> bool:
        return index.might_grant(rule, subjects, tenant, action)

    if index.ptypes_without_obj:
        reasons.append(
            f"rules of type {', '.join(index.ptypes_without_obj)} have no obj field: "
            "patterns cannot be proven"
        )
    matcher_use = index.matcher_key_use
    if matcher_use is not None:
        reasons.append(f"the model's matcher reads the resource as {matcher_use!r}: patterns cannot be proven")
    patterns_provable = not index.ptypes_without_obj and matcher_use is None

    concrete: dict[str, None] = {}
    patterns: dict[str, list[PolicyRule]] = {}
    for rule in index.rules:
        obj = rule.get("obj")
        if obj is None:
            continue
        if obj.startswith(prefix):
            rest = obj[len(prefix) :]
            if is_literal(rest):
                concrete.setdefault(rest, None)
            else:
                patterns.setdefault(obj, []).append(rule)
        elif comparable(literal_prefix(obj), prefix) and grants(rule):
            reasons.append(f"{rule.where}: {obj!r} may match {kind} resources but is not a {prefix} pattern")

    ids: list[str] = []
    unsure = 0
    for number, resource_id in enumerate(concrete):
        if number >= limits.MAX_LIST_CANDIDATES:
            reasons.append(f"more than {limits.MAX_LIST_CANDIDATES} {kind} ids in the rules: the rest were not verified")
            break
        allowed, failure = decide(resource_id)
        if allowed:
            ids.append(resource_id)
        elif failure == "evaluation_error":
            unsure += 1
            if unsure == 1:
                reasons.append(
                    f"{prefix}{resource_id}: the decision depends on resource attributes "
                    "(or fails to evaluate without them)"
                )
    if unsure > 1:
        reasons.append(f"{unsure - 1} more {kind} ids depend on resource attributes")

    listed: list[str] = []
    for obj, rules in patterns.items():
        rule = rules[0]
        granting = any(grants(each) for each in rules)
        start = prefix_of_pattern(obj)
        if start is None or not patterns_provable:
            if granting:
                reasons.append(f"{rule.where}: pattern {obj!r} is not a prefix pattern the service can prove")
            continue
        exception = _exception_inside(index, start)
        if exception is not None:
            if granting:
                reasons.append(f"{rule.where}: pattern {obj!r} has an exception inside it ({exception})")
            continue
        outcomes = [decide(start[len(prefix) :] + suffix) for suffix in _PROBE_SUFFIXES]
        if all(allowed for allowed, _ in outcomes):
            listed.append(obj)
        elif not granting:
            continue
        elif any(failure == "evaluation_error" for _, failure in outcomes):
            reasons.append(f"{rule.where}: pattern {obj!r} depends on resource attributes")
        elif any(allowed for allowed, _ in outcomes):
            reasons.append(f"{rule.where}: pattern {obj!r} allows only keys without a further '/'")
        elif any(failure == "invalid" for _, failure in outcomes):
            reasons.append(f"{rule.where}: pattern {obj!r} cannot be probed with a valid id")
    return Listing(tuple(ids), tuple(listed), tuple(reasons[:_MAX_REASONS]))


def _exception_inside(index: RuleIndex, start: str) -> str | None:
    """The first rule that could treat keys starting with `start` differently, if any."""
    for rule in index.rules:
        obj = rule.get("obj")
        if obj is None or not comparable(literal_prefix(obj), start):
            continue
        if any(reads_object_beyond_attributes(value) for value in rule.fields.values()):
            return f"{rule.where} reads r.obj"
        if is_literal(obj) and start.startswith(obj):
            continue
        inner = prefix_of_pattern(obj)
        if inner is not None and start.startswith(inner):
            continue
        return f"{rule.where}: {obj}"
    return None
