"""Typed attributes: what a policy set's rules expect of subject, actor, resource and context.

A bundle may carry `schema.yaml`::

    subject:
      mfa:       {type: bool}
      clearance: {type: int}
    resource:
      classification: {type: int, required: true, kinds: [data]}
    context:
      channel:   {type: string}

Types: bool, int, float, string, list (of strings). Without a schema file,
types are inferred from the rules themselves: every comparison of a request
attribute with a literal (`r.sub.mfa == True`, `r.obj.risk == "high"`) fixes
that attribute's type. Either way a value of the wrong type (`"true"` for a
bool, `"5000"` for an int) is refused before evaluation instead of silently
failing a comparison.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from policy_engine.errors import BundleError, InvalidRequestError, Problem

__all__ = ["SCHEMA_FILE", "AttributeSchema", "AttributeType", "infer_schema", "parse_schema"]

SCHEMA_FILE = "schema.yaml"
PARTIES = ("subject", "actor", "resource", "context")
_TYPES = ("bool", "int", "float", "string", "list")
# Which request token each party is bound to (see policy_engine.actions).
_TOKEN_PARTIES = {"sub": ("subject", "actor"), "obj": ("resource",), "ctx": ("context",)}
_ATTRIBUTE = re.compile(r"^r[._](sub|obj|ctx)$")


@dataclass(frozen=True)
class AttributeType:
    type: str
    required: bool = False
    kinds: frozenset[str] = frozenset()

    def accepts(self, value: Any) -> bool:
        if self.type == "bool":
            return isinstance(value, bool)
        if self.type == "string":
            return isinstance(value, str)
        if self.type == "list":
            return isinstance(value, list) and all(isinstance(v, str) for v in value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if not math.isfinite(value):
            return False
        return self.type == "float" or float(value).is_integer()


@dataclass(frozen=True)
class AttributeSchema:
    """Expected attribute types per party ("subject", "actor", "resource", "context")."""

    parties: Mapping[str, Mapping[str, AttributeType]] = field(default_factory=dict)

    def check(self, party: str, attributes: Mapping[str, Any], field_prefix: str, kind: str = "") -> None:
        """Raise InvalidRequestError naming the first attribute of the wrong type or missing."""
        expected = self.parties.get(party, {})
        for name, value in attributes.items():
            spec = expected.get(name)
            if spec is not None and not spec.accepts(value):
                raise InvalidRequestError(f"{field_prefix}.{name}", f"must be {_article(spec.type)}")
        for name, spec in expected.items():
            applies = not spec.kinds or kind in spec.kinds
            if spec.required and applies and name not in attributes:
                raise InvalidRequestError(f"{field_prefix}.{name}", "is required")


def parse_schema(text: str) -> AttributeSchema:
    """Read schema.yaml; BundleError names the offending entry."""
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise BundleError([Problem(SCHEMA_FILE, f"invalid YAML: {exc}")]) from exc
    if not isinstance(document, dict):
        raise BundleError([Problem(SCHEMA_FILE, "must be a mapping of parties")])
    problems: list[Problem] = []
    parties: dict[str, dict[str, AttributeType]] = {}
    for party, attributes in document.items():
        if party not in PARTIES or not isinstance(attributes, dict):
            problems.append(Problem(SCHEMA_FILE, f"{party!r}: expected one of {', '.join(PARTIES)} mapping to attributes"))
            continue
        parties[party] = {}
        for name, spec in attributes.items():
            if isinstance(spec, str):
                spec = {"type": spec}
            if not isinstance(spec, dict) or spec.get("type") not in _TYPES:
                problems.append(Problem(SCHEMA_FILE, f"{party}.{name}: type must be one of {', '.join(_TYPES)}"))
                continue
            parties[party][str(name)] = AttributeType(
                type=spec["type"],
                required=bool(spec.get("required", False)),
                kinds=frozenset(spec.get("kinds") or ()),
            )
    if problems:
        raise BundleError(problems)
    return AttributeSchema(parties)


def infer_schema(texts: Iterable[str]) -> AttributeSchema:
    """Types fixed by comparisons of request attributes with literals in matcher and rule texts."""
    found: dict[str, dict[str, AttributeType]] = {}
    for text in texts:
        for token, name, type_name in _comparisons(text):
            for party in _TOKEN_PARTIES[token]:
                found.setdefault(party, {}).setdefault(name, AttributeType(type_name))
    return AttributeSchema(found)


def _comparisons(text: str) -> Iterable[tuple[str, str, str]]:
    python = text.replace("&&", " and ").replace("||", " or ")
    python = re.sub(r"!(?!=)", " not ", python)
    try:
        tree = ast.parse(python, mode="eval")
    except SyntaxError:
        return
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        for left, right in zip(operands, operands[1:], strict=False):
            for attribute, literal in ((left, right), (right, left)):
                target = _request_attribute(attribute)
                literal_type = _literal_type(literal)
                if target and literal_type:
                    yield (*target, literal_type)


def _request_attribute(node: ast.expr) -> tuple[str, str] | None:
    if not isinstance(node, ast.Attribute):
        return None
    base = node.value
    if isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name):
        dotted = f"{base.value.id}.{base.attr}"
    elif isinstance(base, ast.Name):
        dotted = base.id
    else:
        return None
    match = _ATTRIBUTE.match(dotted)
    return (match.group(1), node.attr) if match else None


def _literal_type(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool):
            return "bool"
        if isinstance(value, (int, float)):
            return "float"
        if isinstance(value, str):
            return "string"
    return None


def _article(type_name: str) -> str:
    return {"int": "an integer", "float": "a number", "bool": "a bool (true or false)", "string": "a string", "list": "a list of strings"}[type_name]
