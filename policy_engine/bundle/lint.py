"""Lint a compiled bundle for the sharp edges of Casbin that a service must not ship.

Refused, each with the file and line of the offending rule:
- a bundle with no policy rules;
- a rule whose `eft` field is not `allow` or `deny` (pycasbin would ignore it);
- a pattern that reaches the pattern argument of regexMatch, keyMatch2-5 or
  ipMatch, wherever the call sits in a matcher, and that `bundle.patterns`
  refuses (unanchored, not linear-time, backtracking, a `.` wildcard, ...);
- eval() rule text that is not a plain condition (`bundle.conditions`);
- role cycles and role chains deeper than the engine's limit;
- fields with control characters or commas, which do not survive a CSV round trip.

Which rule fields reach a pattern or `eval()` comes from the parsed matchers
(`bundle.matchers`), not from their text.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable

from policy_engine.bundle.conditions import condition_problem
from policy_engine.bundle.loader import MODEL_FILE, POLICY_FILE, Bundle
from policy_engine.bundle.matchers import MatcherUses, check_matchers
from policy_engine.bundle.model_text import read_layout
from policy_engine.bundle.patterns import pattern_problem
from policy_engine.bundle.roles import lint_roles
from policy_engine.engine import Engine, MatchedRule
from policy_engine.errors import Problem

__all__ = ["MAX_ROLE_DEPTH", "lint_bundle"]

# pycasbin's default role manager follows at most 10 levels of inheritance.
MAX_ROLE_DEPTH = 10

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_EFFECTS = ("allow", "deny")


def lint_bundle(bundle: Bundle, engine: Engine, uses: MatcherUses | None = None) -> list[Problem]:
    """Every lint problem of a bundle that compiled (matcher problems included); empty when clean."""
    if uses is None:
        uses = check_matchers(engine.model, engine.rules, read_layout(bundle.model_text))
    problems: list[Problem] = list(uses.problems)
    policy_rules = [r for r in engine.rules if r.ptype.startswith("p")]
    if not policy_rules:
        problems.append(Problem(POLICY_FILE, "the bundle has no policy rules", None))
    problems.extend(_field_problems(engine.rules))
    problems.extend(_effect_problems(engine, policy_rules))
    problems.extend(_pattern_problems(uses, policy_rules))
    problems.extend(_condition_problems(uses, policy_rules))
    problems.extend(_role_problems([r for r in engine.rules if r.ptype.startswith("g")]))
    problems.extend(lint_roles(bundle.roles_text, engine))  # roles.yaml (bundle/roles.py)
    return problems


def _field_problems(rules: Iterable[MatchedRule]) -> Iterable[Problem]:
    for rule in rules:
        for value in rule.values:
            if _CONTROL.search(value):
                yield Problem(POLICY_FILE, f"field {value!r} contains a control character", rule.line)
            elif "," in value:
                yield Problem(
                    POLICY_FILE,
                    f"field {value!r} contains a comma, which does not survive a CSV round trip",
                    rule.line,
                )


def _effect_problems(engine: Engine, rules: list[MatchedRule]) -> Iterable[Problem]:
    for rule in rules:
        tokens = engine.policy_tokens.get(rule.ptype, ())
        if "eft" not in tokens:
            continue
        at = tokens.index("eft")
        if at < len(rule.values) and rule.values[at] not in _EFFECTS:
            yield Problem(
                POLICY_FILE,
                f"eft {rule.values[at]!r} must be allow or deny (anything else never takes effect)",
                rule.line,
            )


def _pattern_problems(uses: MatcherUses, rules: list[MatchedRule]) -> Iterable[Problem]:
    verdicts: dict[tuple[str, str], str | None] = {}
    for use in uses.patterns:
        if use.literal:
            value = use.value(())
            assert value is not None
            message = pattern_problem(use.function, value)
            if message:
                yield Problem(
                    MODEL_FILE, f"matcher {use.matcher}: {use.function} pattern {value!r}: {message}", use.line
                )
            continue
        for rule in rules:
            if rule.ptype != use.ptype:
                continue
            value = use.value(rule.values)
            if value is None:
                continue
            key = (use.function, value)
            if key not in verdicts:
                verdicts[key] = pattern_problem(use.function, value)
            if verdicts[key]:
                yield Problem(POLICY_FILE, f"{use.function} pattern {value!r}: {verdicts[key]}", rule.line)


def _condition_problems(uses: MatcherUses, rules: list[MatchedRule]) -> Iterable[Problem]:
    verdicts: dict[tuple[str, tuple[str, ...]], str | None] = {}
    for use in uses.evals:
        for rule in rules:
            if rule.ptype != use.ptype or use.index >= len(rule.values):
                continue
            key = (rule.values[use.index], use.request_tokens)
            if key not in verdicts:
                verdicts[key] = condition_problem(*key)
            if verdicts[key]:
                yield Problem(POLICY_FILE, f"eval pattern {rule.values[use.index]!r}: {verdicts[key]}", rule.line)


def _role_problems(grouping: list[MatchedRule]) -> Iterable[Problem]:
    for ptype in sorted({r.ptype for r in grouping}):
        edges: dict[tuple[str, str], list[str]] = defaultdict(list)
        lines: dict[tuple[str, str, str], int | None] = {}
        for rule in grouping:
            if rule.ptype != ptype or len(rule.values) < 2:
                continue
            domain = rule.values[2] if len(rule.values) > 2 else ""
            edges[(domain, rule.values[0])].append(rule.values[1])
            lines.setdefault((domain, rule.values[0], rule.values[1]), rule.line)
        yield from _walk_roles(ptype, edges, lines)


def _walk_roles(
    ptype: str,
    edges: dict[tuple[str, str], list[str]],
    lines: dict[tuple[str, str, str], int | None],
) -> Iterable[Problem]:
    depth_memo: dict[tuple[str, str], int] = {}
    reported: set[tuple[str, str]] = set()

    def depth(domain: str, name: str, path: tuple[str, ...]) -> int:
        key = (domain, name)
        if key in depth_memo:
            return depth_memo[key]
        best = 0
        for parent in edges.get(key, ()):
            if parent in path:
                if key not in reported:
                    reported.add(key)
                    cycle = " -> ".join((*path[path.index(parent):], name, parent))
                    where = f" in domain {domain!r}" if domain else ""
                    problems.append(
                        Problem(POLICY_FILE, f"{ptype} role cycle{where}: {cycle}", lines.get((domain, name, parent)))
                    )
                continue
            best = max(best, 1 + depth(domain, parent, (*path, name)))
        depth_memo[key] = best
        return best

    problems: list[Problem] = []
    for domain, name in list(edges):
        chain = depth(domain, name, ())
        if chain > MAX_ROLE_DEPTH and (domain, name) not in reported:
            reported.add((domain, name))
            first_parent = edges[(domain, name)][0]
            problems.append(
                Problem(
                    POLICY_FILE,
                    f"{ptype} role chain from {name!r} is {chain} levels deep; the engine follows "
                    f"at most {MAX_ROLE_DEPTH}",
                    lines.get((domain, name, first_parent)),
                )
            )
    return problems
