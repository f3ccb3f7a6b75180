"""Explain a denial: which part failed (no role, no matching rule, a condition, the actor).

Only when the caller asked for explain: the decision itself is the engine's
and is never changed here; this reads the rules as written to say *why* in
terms a policy author recognises, naming the rule and its line.

The refinement reads the usual shape of an RBAC-with-domains model (tokens
named sub, dom, obj, act, cond, eft; `*` patterns as keyMatch). For other
shapes it keeps the engine's own account ("no_matching_rule").
"""

from __future__ import annotations

from policy_engine.actions import Action, ActionDecision, Party
from policy_engine.engine import Engine, MatchedRule
from policy_engine.service.rules import PolicyRule, RuleIndex, key_match, rule_index

__all__ = ["explain_denial"]


def explain_denial(engine: Engine, action: Action, decision: ActionDecision) -> ActionDecision:
    """The same denial with `failure`, `reason` and `matched` refined when the rules tell more."""
    if decision.allowed or decision.failure not in ("no_matching_rule", "actor"):
        return decision
    index = rule_index(engine)
    if decision.failure == "actor":
        if decision.matched or action.actor is None:
            return decision
        kind, detail, rules = _classify(index, action, action.actor)
        return decision._replace(reason=f"{decision.reason} ({kind}: {detail})", matched=rules)
    kind, detail, rules = _classify(index, action, action.subject)
    if not kind:
        return decision
    return decision._replace(
        failure=kind,
        reason=f"subject {action.subject.id!r} is not allowed: {detail}",
        matched=rules,
    )


def _classify(
    index: RuleIndex, action: Action, party: Party
) -> tuple[str, str, tuple[MatchedRule, ...]]:
    if not index.rules or any(rule.get("sub") is None for rule in index.rules):
        return "", "", ()
    roles = index.roles(party.id, action.tenant)
    names = {party.id} | roles
    own = [rule for rule in index.rules if rule.get("sub") in names]
    if not own:
        return (
            "no_role",
            f"it has no role in tenant {action.tenant!r} and no rule names it",
            (),
        )
    key = action.resource.key
    candidates = [rule for rule in own if not rule.is_deny and _applies(rule, action, key)]
    conditional = [rule for rule in candidates if rule.condition is not None]
    if conditional:
        first = conditional[0]
        return (
            "condition",
            f"the condition {first.condition!r} of {first.rule.text} ({first.where}) is not met",
            tuple(rule.rule for rule in conditional),
        )
    held = ", ".join(sorted(roles)) or "none"
    return (
        "no_matching_rule",
        f"no rule of {party.id!r} or its roles ({held}) allows {action.action!r} on {key!r}",
        (),
    )


def _applies(rule: PolicyRule, action: Action, key: str) -> bool:
    dom, obj, act = rule.get("dom"), rule.get("obj"), rule.get("act")
    return (
        (dom is None or key_match(action.tenant, dom))
        and (obj is None or key_match(key, obj))
        and (act is None or key_match(action.action, act))
    )
