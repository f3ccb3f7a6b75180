"""Run a bundle's tests: tables of actions and the decision each must get.

A test file names its fixtures once, then lists expectations (the Cerbos shape)::

    name: tool_access
    subjects:  {alice: {id: alice, attr: {mfa: true}}}
    actors:    {helper: {id: "agent:helper"}}
    resources: {search: {kind: tool, id: web_search, attr: {risk: low}}}
    tests:
      - {tenant: acme, subject: alice, actor: helper, action: invoke, resource: search, expect: allow}

A case may also give `context: {...}`. A subject, actor or resource is a
fixture name of the file, or an inline mapping (`{id: bob}`, `{kind: tool, id:
web_search}`); a name that is not a fixture (`samm` for `sam`) is an error, so
a misspelling cannot make a deny test pass for the wrong reason. Every
failure names its file and line.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from policy_engine.actions import Action, ActionDecision, Party, ResourceRef, decide_action
from policy_engine.bundle.ids import fold_action, folds_ids
from policy_engine.bundle.loader import Bundle
from policy_engine.engine import Engine
from policy_engine.errors import BundleError, Problem

__all__ = ["CaseResult", "TestReport", "run_bundle_tests"]

_LINE = "__line__"
_CASE_KEYS = {"tenant", "subject", "actor", "action", "resource", "context", "expect", "name", _LINE}
_FILE_KEYS = {"name", "subjects", "actors", "resources", "tests", "description"}
_FIXTURE_KEYS = {"subject": {"id", "attr"}, "actor": {"id", "attr"}, "resource": {"kind", "id", "attr"}}


@dataclass(frozen=True)
class CaseResult:
    """One expectation and what the policy decided."""

    file: str
    line: int
    description: str
    action: Action
    expected: bool
    decision: ActionDecision

    @property
    def passed(self) -> bool:
        return self.decision.allowed == self.expected


@dataclass(frozen=True)
class TestReport:
    """Every case of every test file of a bundle."""

    results: tuple[CaseResult, ...]

    @property
    def failures(self) -> tuple[CaseResult, ...]:
        return tuple(r for r in self.results if not r.passed)

    @property
    def passed(self) -> bool:
        return not self.failures

    def problems(self) -> list[Problem]:
        return [
            Problem(
                r.file,
                f"{r.description}: expected {_word(r.expected)}, got {_word(r.decision.allowed)}"
                f" ({r.decision.reason})",
                r.line,
            )
            for r in self.failures
        ]


def run_bundle_tests(bundle: Bundle, engine: Engine) -> TestReport:
    """Decide every case of the bundle's tests with `engine`; raises BundleError on malformed files."""
    results: list[CaseResult] = []
    problems: list[Problem] = []
    folding = folds_ids(bundle.schema_text)  # ids compare as served (policy_engine.bundle.ids)
    for file, text in bundle.tests.items():
        try:
            cases = _parse_file(file, text)
        except BundleError as exc:
            problems.extend(exc.problems)
            continue
        for line, description, action, expected in cases:
            results.append(
                CaseResult(
                    file, line, description, action, expected,
                    decide_action(engine, fold_action(action) if folding else action),
                )
            )
    if problems:
        raise BundleError(problems)
    return TestReport(tuple(results))


class _LineLoader(yaml.SafeLoader):
    """A safe loader that records the line of every mapping, so failures can point at it."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    seen = set()
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode):
            if key_node.value in seen:  # YAML would silently keep the last one
                raise yaml.constructor.ConstructorError(
                    None, None, f"{key_node.value!r} is given twice", key_node.start_mark
                )
            seen.add(key_node.value)
    mapping = loader.construct_mapping(node, deep=True)
    mapping[_LINE] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _parse_file(file: str, text: str) -> list[tuple[int, str, Action, bool]]:
    try:
        doc = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise BundleError([Problem(file, f"invalid YAML: {exc}", mark.line + 1 if mark else None)]) from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("tests"), list):
        raise BundleError([Problem(file, "a test file is a mapping with a 'tests' list", 1)])
    unknown = set(doc) - _FILE_KEYS - {_LINE}
    if unknown:
        raise BundleError([Problem(file, f"unknown keys {sorted(unknown)}", 1)])
    fixtures = {}
    for kind in ("subjects", "actors", "resources"):
        named = doc.get(kind) or {}
        if not isinstance(named, dict):
            raise BundleError([Problem(file, f"{kind} is a mapping of fixture names", doc[_LINE])])
        fixtures[kind] = {k: v for k, v in named.items() if k != _LINE}
    cases = []
    problems = []
    for case in doc["tests"]:
        line = case.get(_LINE, 0) if isinstance(case, dict) else 0
        try:
            cases.append(_parse_case(case, fixtures))
        except ValueError as exc:
            problems.append(Problem(file, str(exc), line))
    if problems:
        raise BundleError(problems)
    return cases


def _parse_case(case: Any, fixtures: Mapping[str, Any]) -> tuple[int, str, Action, bool]:
    if not isinstance(case, dict):
        raise ValueError("a test case is a mapping")
    unknown = set(case) - _CASE_KEYS
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}")
    for key in ("tenant", "subject", "action", "resource", "expect"):
        if key not in case:
            raise ValueError(f"missing {key!r}")
    if case["expect"] not in ("allow", "deny"):
        raise ValueError("expect must be 'allow' or 'deny'")
    subject = _party(case["subject"], fixtures["subjects"], "subject")
    actor = _party(case["actor"], fixtures["actors"], "actor") if case.get("actor") else None
    resource_spec = _fixture(case["resource"], fixtures["resources"], "resource")
    resource = ResourceRef(
        kind=str(resource_spec.get("kind", "")),
        id=str(resource_spec["id"]),
        attributes=_attributes(resource_spec),
    )
    action = Action(
        tenant=str(case["tenant"]),
        subject=subject,
        action=str(case["action"]),
        resource=resource,
        actor=actor,
        context=_strip(case.get("context") or {}),
    )
    by = f" by {actor.id}" if actor else ""
    description = case.get("name") or (
        f"{subject.id}{by} {action.action} {resource.key} in {action.tenant}"
    )
    return case[_LINE], str(description), action, case["expect"] == "allow"


def _fixture(ref: Any, named: Mapping[str, Any], what: str) -> Mapping[str, Any]:
    """A fixture by name, or an inline mapping with an id; any other name is a mistake."""
    if isinstance(ref, str):
        if ref not in named:
            close = difflib.get_close_matches(ref, [str(n) for n in named], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            defined = ", ".join(sorted(str(n) for n in named)) or "none"
            raise ValueError(
                f"{what} {ref!r} is not a fixture of this file ({what}s defined: {defined}){hint} "
                f"(for one without a fixture write {{id: {ref}}})"
            )
        spec = named[ref]
    else:
        spec = ref
    if not isinstance(spec, dict) or "id" not in spec:
        raise ValueError(f"{what} {ref!r} is neither a fixture name nor a mapping with an id")
    unknown = set(spec) - _FIXTURE_KEYS[what] - {_LINE}
    if unknown:  # e.g. `attrs:` for `attr:` would silently test without attributes
        raise ValueError(f"{what} {ref!r}: unknown keys {sorted(unknown)} (allowed: {sorted(_FIXTURE_KEYS[what])})")
    return spec


def _party(ref: Any, named: Mapping[str, Any], what: str) -> Party:
    spec = _fixture(ref, named, what)
    return Party(id=str(spec["id"]), attributes=_attributes(spec))


def _attributes(spec: Mapping[str, Any]) -> dict[str, Any]:
    return _strip(spec.get("attr") or {})


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k != _LINE}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _word(allowed: bool) -> str:
    return "allow" if allowed else "deny"
