"""roles.yaml: which role definitions match by pattern and which links carry conditions.

pycasbin sets these up in code (`add_named_matching_func`, ...); a bundle
declares them, without code, in `roles.yaml` beside model.conf::

    g2:
      names: keyMatch2        # g2's names are patterns: /tools/:name belongs to tool_group
    g:
      domains: keyMatch       # a link in domain "*" applies in every domain
    g3:                       # a conditional definition: g3 = _, _, (_, _)
      condition: timeMatch    # every link of g3 holds only while timeMatch(its params)
      links:                  # or per link (a link listed here overrides `condition`)
        - {user: alice, role: oncall, condition: timeMatch}
        - {user: bob, role: oncall, domain: acme, condition: timeMatch}

`names`/`domains` take keyMatch, keyMatch2..5, globMatch, regexMatch or
ipMatch (names: a plain or domain definition; domains: a domain definition);
`condition` takes timeMatch or one of those (called with the link's params:
the rule fields in the definition's parentheses) and needs a conditional
definition. Anything else, an unknown definition, function or key, is a
Problem with roles.yaml and its line. No Python is ever loaded from a bundle.

`pattern_problems` lints the rules such a declaration turns into patterns:
a pattern that matches every name (`*`, `.*`, `**`, `:x` ...) and a
regexMatch pattern without a closing `$` (it also matches every longer name).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from policy_engine.engine import Engine
from policy_engine.engine.functions import BUILTIN_FUNCTIONS
from policy_engine.engine.model import RoleKind
from policy_engine.errors import BundleError, Problem

__all__ = [
    "ROLES_FILE", "RoleSetup", "apply_roles", "lint_roles", "parse_roles", "pattern_problems",
]  # fmt: skip

ROLES_FILE = "roles.yaml"
POLICY_FILE = "policy.csv"
MATCHING = ("keyMatch", "keyMatch2", "keyMatch3", "keyMatch4", "keyMatch5", "globMatch",
            "regexMatch", "ipMatch")  # fmt: skip
CONDITIONS = ("timeMatch", *MATCHING)
_DEFINITION_KEYS = ("names", "domains", "condition", "links")
_LINK_KEYS = ("user", "role", "domain", "condition")
# Names no real pattern should match all of: a pattern matching every one matches every name
# (dot-names are left out: globMatch's `*` and `**` skip them, and role names rarely start so).
_PROBES = ("", "x", "zz9", "admin", "/", "/a/b", "a:b", " ", "é", "tool:mcp/x", "1.2.3.4",
           "0.0.0.0", "::1", "*")  # fmt: skip


@dataclass(frozen=True)
class LinkCondition:
    user: str
    role: str
    domain: str
    condition: str
    line: int


@dataclass(frozen=True)
class DefinitionSetup:
    """What roles.yaml says about one role definition, with the lines it says it on."""

    key: str
    line: int
    names: str | None = None
    domains: str | None = None
    condition: str | None = None
    condition_line: int | None = None
    links: tuple[LinkCondition, ...] = ()


@dataclass(frozen=True)
class RoleSetup:
    definitions: Mapping[str, DefinitionSetup] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.definitions)


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _scalar(node: yaml.Node, what: str, problems: list[Problem]) -> str | None:
    if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":str") and node.value:
        return str(node.value)
    problems.append(Problem(ROLES_FILE, f"{what} must be a non-empty string", _line(node)))
    return None


def _function(node: yaml.Node, allowed: tuple[str, ...], what: str, problems: list[Problem]) -> str | None:
    name = _scalar(node, what, problems)
    if name is not None and name not in allowed:
        problems.append(
            Problem(ROLES_FILE, f"{what}: unknown function {name!r} (one of {', '.join(allowed)})",
                    _line(node))
        )  # fmt: skip
        return None
    return name


def _keys(node: yaml.MappingNode, allowed: tuple[str, ...], where: str,
          problems: list[Problem]) -> dict[str, yaml.Node]:  # fmt: skip
    found: dict[str, yaml.Node] = {}
    for key_node, value in node.value:
        key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
        if key not in allowed:
            problems.append(
                Problem(ROLES_FILE, f"{where}: unknown key {key!r} (one of {', '.join(allowed)})",
                        _line(key_node))
            )  # fmt: skip
        elif key in found:
            problems.append(Problem(ROLES_FILE, f"{where}: {key} given twice", _line(key_node)))
        else:
            found[key] = value
    return found


def parse_roles(text: str, engine: Engine) -> RoleSetup:
    """roles.yaml text, checked against the model's role definitions; BundleError otherwise."""
    if not text.strip():
        return RoleSetup()
    problems: list[Problem] = []
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise BundleError(
            [Problem(ROLES_FILE, f"not valid YAML: {exc}", mark.line + 1 if mark else None)]
        ) from exc
    if root is None:
        return RoleSetup()
    if not isinstance(root, yaml.MappingNode):
        raise BundleError([Problem(ROLES_FILE, "must map role definitions (g, g2, ...) to their setup", _line(root))])
    roles = engine.model.roles
    definitions: dict[str, DefinitionSetup] = {}
    for key_node, body in root.value:
        key = str(key_node.value)
        line = _line(key_node)
        definition = roles.get(key)
        if definition is None:
            known = ", ".join(roles) or "none"
            problems.append(Problem(ROLES_FILE, f"unknown role definition {key!r} (model.conf has {known})", line))
            continue
        if key in definitions:
            problems.append(Problem(ROLES_FILE, f"{key} is set up twice", line))
            continue
        if not isinstance(body, yaml.MappingNode):
            problems.append(Problem(ROLES_FILE, f"{key}: expected keys {', '.join(_DEFINITION_KEYS)}", _line(body)))
            continue
        parts = _keys(body, _DEFINITION_KEYS, key, problems)
        conditional = definition.kind in (RoleKind.CONDITIONAL, RoleKind.CONDITIONAL_DOMAIN)
        with_domain = definition.kind in (RoleKind.DOMAIN, RoleKind.CONDITIONAL_DOMAIN)
        setup: dict[str, Any] = {}
        for name in ("names", "domains"):
            if name in parts:
                if conditional:
                    problems.append(Problem(
                        ROLES_FILE, f"{key}.{name}: a conditional role definition cannot match "
                        "by pattern (pycasbin offers no matching function for it)", _line(parts[name])))  # fmt: skip
                elif name == "domains" and not with_domain:
                    problems.append(Problem(
                        ROLES_FILE, f"{key}.domains: {key} = {definition.value} has no domain", _line(parts[name])))  # fmt: skip
                else:
                    setup[name] = _function(parts[name], MATCHING, f"{key}.{name}", problems)
        for name in ("condition", "links"):
            if name in parts and not conditional:
                problems.append(Problem(
                    ROLES_FILE, f"{key}.{name}: {key} = {definition.value} is not conditional "
                    "(it needs parameters, e.g. _, _, (_, _))", _line(parts[name])))  # fmt: skip
                parts.pop(name)
        if "condition" in parts:
            setup["condition"] = _function(parts["condition"], CONDITIONS, f"{key}.condition", problems)
            setup["condition_line"] = _line(parts["condition"])
        if "links" in parts:
            setup["links"] = tuple(_links(key, parts["links"], with_domain, problems))
        definitions[key] = DefinitionSetup(key=key, line=line, **setup)
    if problems:
        raise BundleError(problems)
    return RoleSetup(definitions)


def _links(key: str, node: yaml.Node, with_domain: bool, problems: list[Problem]) -> Iterable[LinkCondition]:
    if not isinstance(node, yaml.SequenceNode):
        problems.append(Problem(ROLES_FILE, f"{key}.links: expected a list", _line(node)))
        return
    for item in node.value:
        where = f"{key}.links[{_line(item)}]"
        if not isinstance(item, yaml.MappingNode):
            problems.append(Problem(ROLES_FILE, f"{where}: expected user, role, condition", _line(item)))
            continue
        parts = _keys(item, _LINK_KEYS, where, problems)
        missing = [k for k in ("user", "role", "condition") if k not in parts]
        if missing:
            problems.append(Problem(ROLES_FILE, f"{where}: missing {', '.join(missing)}", _line(item)))
            continue
        if "domain" in parts and not with_domain:
            problems.append(Problem(ROLES_FILE, f"{where}: {key} has no domain", _line(parts["domain"])))
            continue
        user = _scalar(parts["user"], f"{where}.user", problems)
        role = _scalar(parts["role"], f"{where}.role", problems)
        domain = _scalar(parts["domain"], f"{where}.domain", problems) if "domain" in parts else ""
        condition = _function(parts["condition"], CONDITIONS, f"{where}.condition", problems)
        if user and role and condition and domain is not None:
            yield LinkCondition(user, role, domain, condition, _line(item))


def apply_roles(engine: Engine, setup: RoleSetup) -> Engine:
    """Register the declared functions on `engine` (before it decides anything)."""
    for key, definition in sorted(setup.definitions.items()):
        if definition.names:
            engine.add_named_matching_func(key, definition.names)
        if definition.domains:
            engine.add_named_domain_matching_func(key, definition.domains)
        conditions: dict[tuple[str, str, str], str] = {}
        if definition.condition:
            for rule in engine.rules:
                if rule.ptype == key:
                    with_domain = engine.model.roles[key].token_count > 2
                    domain = rule.values[2] if with_domain else ""
                    conditions[(rule.values[0], rule.values[1], domain)] = definition.condition
        for link in definition.links:
            conditions[(link.user, link.role, link.domain)] = link.condition
        for (user, role, domain), condition in sorted(conditions.items()):
            engine.add_named_domain_link_condition_func(key, user, role, domain, condition)
    return engine


def lint_roles(roles_text: str, engine: Engine) -> list[Problem]:
    """The lint entry point: roles.yaml's problems (file:line), then its dangerous patterns."""
    try:
        setup = parse_roles(roles_text, engine)
    except BundleError as exc:
        return list(exc.problems)
    return pattern_problems(engine, setup)


def pattern_problems(engine: Engine, setup: RoleSetup) -> list[Problem]:
    """Dangerous patterns in the rules of definitions declared to match by pattern, with the
    policy.csv line: a name or domain pattern matching every name, an unanchored regex."""
    problems: list[Problem] = []
    for key, definition in sorted(setup.definitions.items()):
        checks = []
        if definition.names:
            checks += [(definition.names, 0, "name"), (definition.names, 1, "name")]
        if definition.domains:  # a domain pattern for every domain is a global role: intended
            checks.append((definition.domains, 2, "domain"))
        for function_name, at, what in checks:
            function = BUILTIN_FUNCTIONS[function_name]
            for rule in engine.rules:
                if rule.ptype != key or at >= len(rule.values):
                    continue
                pattern = rule.values[at]
                message = _danger(function_name, function, pattern, what)
                if message:
                    problems.append(Problem(POLICY_FILE, f"{key} {what} pattern {pattern!r}: {message}", rule.line))
    return problems


def _danger(name: str, function: Any, pattern: str, what: str) -> str | None:
    def matches(probe: str) -> bool:
        try:
            return bool(function(probe, pattern))
        except Exception:  # noqa: BLE001 - a pattern that raises matches nothing
            return False

    if what == "name" and all(matches(probe) for probe in _PROBES if probe != pattern):
        return f"matches every {what} under {name}: every {what} would get this link"
    if name == "regexMatch" and not (pattern.endswith("$") or pattern.endswith(r"\Z")):
        return (f"regexMatch pattern is not anchored with $: it also matches every {what} "
                "that merely starts with a match")  # fmt: skip
    return None
