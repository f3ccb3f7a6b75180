"""Lint a compiled bundle for the sharp edges of Casbin that a service must not ship.

Refused, each with the file and line of the offending rule:
- a bundle with no policy rules;
- regexMatch patterns not anchored at both ends (^...$) or with nested quantifiers,
  which backtrack catastrophically;
- a literal "." in keyMatch2-5 patterns, where it is a regex wildcard;
- eval() rule text that is not a plain condition on request attributes;
- role cycles and role chains deeper than the engine's limit;
- fields with control characters or commas, which do not survive a CSV round trip.
"""

from __future__ import annotations

import ast
import re
import re._parser as sre_parse  # the stdlib's own regex parser, to inspect quantifier nesting
from collections import defaultdict
from collections.abc import Iterable

from policy_engine.bundle.loader import MODEL_FILE, POLICY_FILE, Bundle
from policy_engine.bundle.roles import lint_roles
from policy_engine.engine import Engine, MatchedRule
from policy_engine.errors import Problem

__all__ = ["MAX_ROLE_DEPTH", "lint_bundle"]

# pycasbin's default role manager follows at most 10 levels of inheritance.
MAX_ROLE_DEPTH = 10

_CALL = re.compile(r"\b(regexMatch|keyMatch[2-5]|eval)\s*\(([^()]*)\)")
_POLICY_ARG = re.compile(r"^\s*(p\d*)[._]([A-Za-z_]\w*)\s*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_COMPARISONS = (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn)


def lint_bundle(bundle: Bundle, engine: Engine) -> list[Problem]:
    """Every lint problem of a bundle that compiled; empty when it is clean."""
    problems: list[Problem] = []
    policy_rules = [r for r in engine.rules if r.ptype.startswith("p")]
    if not policy_rules:
        problems.append(Problem(POLICY_FILE, "the bundle has no policy rules", None))
    problems.extend(_field_problems(engine.rules))
    problems.extend(_pattern_problems(bundle.model_text, engine))
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


def _pattern_problems(model_text: str, engine: Engine) -> Iterable[Problem]:
    for function, ptype, token in _policy_arguments(model_text):
        tokens = engine.policy_tokens.get(ptype)
        if tokens is None or token not in tokens:
            yield Problem(MODEL_FILE, f"{function}() reads unknown policy field {ptype}.{token}")
            continue
        index = tokens.index(token)
        for rule in engine.rules:
            if rule.ptype != ptype or index >= len(rule.values):
                continue
            value = rule.values[index]
            message = _check_value(function, value)
            if message:
                yield Problem(POLICY_FILE, f"{function} pattern {value!r}: {message}", rule.line)


def _policy_arguments(model_text: str) -> Iterable[tuple[str, str, str]]:
    """(function, ptype, token) for every policy field passed to a linted function."""
    seen = set()
    for line in model_text.splitlines():
        for match in _CALL.finditer(line):
            for argument in match.group(2).split(","):
                found = _POLICY_ARG.match(argument)
                if found and (match.group(1), *found.groups()) not in seen:
                    seen.add((match.group(1), *found.groups()))
                    yield match.group(1), found.group(1), found.group(2)


def _check_value(function: str, value: str) -> str | None:
    if function == "regexMatch":
        return _regex_problem(value)
    if function == "eval":
        return _condition_problem(value)
    if "." in value:
        return "a literal '.' is a regex wildcard in keyMatch2-5; name the resource without it"
    return None


def _regex_problem(pattern: str) -> str | None:
    if not pattern.startswith("^") or not pattern.endswith("$") or pattern.endswith("\\$"):
        return "must be anchored at both ends (^...$)"
    try:
        parsed = sre_parse.parse(pattern)
    except re.error as exc:
        return f"invalid regular expression: {exc}"
    if _has_nested_quantifier(list(parsed), inside_repeat=False):
        return "nested quantifiers backtrack catastrophically"
    return None


def _has_nested_quantifier(items: list, inside_repeat: bool) -> bool:  # type: ignore[type-arg]
    for op, argument in items:
        name = str(op)
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, high, sub = argument
            unbounded_or_many = high is sre_parse.MAXREPEAT or high > 1
            if inside_repeat and unbounded_or_many:
                return True
            if _has_nested_quantifier(list(sub), inside_repeat or unbounded_or_many):
                return True
        elif name == "SUBPATTERN":
            if _has_nested_quantifier(list(argument[-1]), inside_repeat):
                return True
        elif name == "BRANCH":
            if any(_has_nested_quantifier(list(b), inside_repeat) for b in argument[1]):
                return True
    return False


def _condition_problem(text: str) -> str | None:
    """A plain condition: comparisons of request attributes and literals joined by and/or/not."""
    python = text.replace("&&", " and ").replace("||", " or ")
    python = re.sub(r"!(?!=)", " not ", python)
    try:
        tree = ast.parse(python, mode="eval")
    except SyntaxError:
        return "eval() text is not a valid condition"
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            return "eval() text may not call functions"
        if isinstance(node, ast.Name) and node.id not in ("True", "False", "r") and not node.id.startswith("r_"):
            return f"eval() text may read only request values (r.*), not {node.id!r}"
        if isinstance(node, ast.Compare) and not all(isinstance(op, _COMPARISONS) for op in node.ops):
            return "eval() text may only compare"
        if not isinstance(
            node,
            (
                ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.Compare,
                ast.Attribute, ast.Name, ast.Constant, ast.List, ast.Tuple, ast.Load, *_COMPARISONS,
            ),
        ):
            return f"eval() text may not use {type(node).__name__}"
    return None


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
