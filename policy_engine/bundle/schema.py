"""Typed attributes: what a policy set's rules expect of subject, actor, resource and context.

A bundle may carry `schema.yaml`::

    subject:
      mfa:       {type: bool}
      clearance: {type: int}
    resource:
      classification: {type: int, required: true, kinds: [data]}
    context:
      channel:   {type: string}
      peer:      {type: ip}
    ids: {compare: casefold}

Types: bool, int, float, string, list (of strings), ip (an IP address, kept in its
canonical form: `::ffff:10.0.0.5` is `10.0.0.5`). The context's well-known address
fields (WELL_KNOWN_IP_FIELDS) are of type ip unless the schema types them otherwise.
`ids` declares how the policy set compares ids (see policy_engine.bundle.ids):
`casefold` (the default) or `exact`. Without a schema file,
types are inferred from the rules themselves: every comparison of a request
attribute with a literal (`r.sub.mfa == True`, `r.obj.risk == "high"`) fixes
that attribute's type. Either way a value of the wrong type (`"true"` for a
bool, `"5000"` for an int) is refused before evaluation instead of silently
failing a comparison.
"""

from __future__ import annotations

import ast
import ipaddress
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any

import yaml

from policy_engine.errors import BundleError, InvalidRequestError, Problem

__all__ = [
    "CASEFOLD",
    "EXACT",
    "SCHEMA_FILE",
    "WELL_KNOWN_IP_FIELDS",
    "AttributeSchema",
    "AttributeType",
    "canonical_ip",
    "canonical_network",
    "id_comparison",
    "infer_schema",
    "parse_schema",
]

SCHEMA_FILE = "schema.yaml"
PARTIES = ("subject", "actor", "resource", "context")
_TYPES = ("bool", "int", "float", "string", "list", "ip")
# How ids compare (the `ids: {compare: ...}` entry of schema.yaml).
CASEFOLD, EXACT = "casefold", "exact"
_ID_COMPARISONS = (CASEFOLD, EXACT)
# Context attributes that carry a client's address (as proxies and listeners report it).
WELL_KNOWN_IP_FIELDS = frozenset({"ip", "client_ip", "source_ip", "remote_ip"})
# Which request token each party is bound to (see policy_engine.actions).
_TOKEN_PARTIES = {"sub": ("subject", "actor"), "obj": ("resource",), "ctx": ("context",)}
_ATTRIBUTE = re.compile(r"^r[._](sub|obj|ctx)$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SPEC_KEYS = ("type", "required", "kinds")


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
        if self.type == "ip":
            return canonical_ip(value) is not None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if not math.isfinite(value):
            return False
        return self.type == "float" or float(value).is_integer()


@dataclass(frozen=True)
class AttributeSchema:
    """Expected attribute types per party ("subject", "actor", "resource", "context")."""

    parties: Mapping[str, Mapping[str, AttributeType]] = field(default_factory=dict)
    id_compare: str = CASEFOLD

    @cached_property
    def _ip_names(self) -> Mapping[str, frozenset[str]]:
        names = {
            party: frozenset(name for name, spec in specs.items() if spec.type == "ip")
            for party, specs in self.parties.items()
        }
        context = self.parties.get("context", {})
        undeclared = frozenset(name for name in WELL_KNOWN_IP_FIELDS if name not in context)
        names["context"] = names.get("context", frozenset()) | undeclared
        return MappingProxyType(names)

    def ip_names(self, party: str) -> frozenset[str]:
        """The attributes of `party` that hold an IP address (kept canonical)."""
        return self._ip_names.get(party, frozenset())

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
    """Read schema.yaml strictly; BundleError names every offending entry with its line."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise BundleError([Problem(SCHEMA_FILE, f"invalid YAML: {exc}", mark.line + 1 if mark else None)]) from exc
    if root is None:
        return AttributeSchema({})
    problems: list[Problem] = []
    parties: dict[str, dict[str, AttributeType]] = {}
    id_compare = CASEFOLD
    try:
        id_compare = id_comparison(text)
    except BundleError as exc:
        problems.extend(exc.problems)
    for party, attributes, line in _entries(root, "the schema", problems):
        if party == "ids":  # how ids compare, read by id_comparison above
            continue
        if party not in PARTIES or not isinstance(attributes, yaml.MappingNode):
            problems.append(
                Problem(SCHEMA_FILE, f"{party!r}: expected one of {', '.join(PARTIES)} mapping to attributes", line)
            )
            continue
        parties[party] = {}
        for name, spec, spec_line in _entries(attributes, party, problems):
            attribute = _attribute(f"{party}.{name}", name, spec, spec_line, problems)
            if attribute is not None:
                parties[party][name] = attribute
    if problems:
        raise BundleError(problems)
    return AttributeSchema(parties, id_compare)


def id_comparison(text: str) -> str:
    """How the policy set whose schema.yaml is `text` compares ids: CASEFOLD or EXACT."""
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        return CASEFOLD  # parse_schema reports it
    if not isinstance(document, dict) or "ids" not in document:
        return CASEFOLD
    return _id_compare(document["ids"], text)


def _id_compare(declared: Any, text: str) -> str:
    if isinstance(declared, dict) and set(declared) <= {"compare"} and declared.get("compare", CASEFOLD) in _ID_COMPARISONS:
        return str(declared.get("compare", CASEFOLD))
    raise BundleError([Problem(
        SCHEMA_FILE,
        f"ids: must be {{compare: {' or '.join(_ID_COMPARISONS)}}}, not {declared!r}",
        _line_of_key(text, "ids"),
    )])


def _line_of_key(text: str, key: str) -> int | None:
    """The line of a top-level `key` in a YAML mapping document, when it can be found."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    if isinstance(node, yaml.MappingNode):
        for key_node, _value in node.value:
            if key_node.value == key:
                return int(key_node.start_mark.line) + 1
    return None


def canonical_ip(value: Any) -> str | None:
    """The canonical text of an IP address, or None when `value` is not one.

    One address, one spelling: IPv6 compressed and lowercase (`2001:db8::1` for
    `2001:0DB8:0:0::0001`), its zone (`%eth0`) dropped, and an IPv4 address
    written in IPv6 (mapped `::ffff:10.0.0.5`, compatible `::10.0.0.5`) as the
    IPv4 address it is. IPv4 with leading zeros is refused (octal or decimal?).
    """
    if not isinstance(value, str) or not value or len(value) > 64 or not value.isascii():
        return None
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            address = ipaddress.IPv6Address(value.split("%", 1)[0])
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        packed = address.packed
        if packed[:12] == bytes(12) and int.from_bytes(packed[12:], "big") > 1:  # ::a.b.c.d, not :: or ::1
            return str(ipaddress.IPv4Address(packed[12:]))
    return str(address)


def _entries(node: yaml.Node, where: str, problems: list[Problem]) -> Iterable[tuple[str, yaml.Node, int]]:
    """(key, value node, line) of a mapping node; a non-mapping or repeated key is a problem."""
    if not isinstance(node, yaml.MappingNode):
        problems.append(Problem(SCHEMA_FILE, f"{where}: must be a mapping", node.start_mark.line + 1))
        return
    seen: dict[str, int] = {}
    for key_node, value_node in node.value:
        line = key_node.start_mark.line + 1
        key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
        if not isinstance(key, str):
            problems.append(Problem(SCHEMA_FILE, f"{where}: keys must be names", line))
            continue
        if key in seen:
            problems.append(Problem(SCHEMA_FILE, f"{where}: {key!r} is defined twice (first at line {seen[key]})", line))
            continue
        seen[key] = line
        yield key, value_node, line


def _attribute(
    path: str, name: str, spec: yaml.Node, line: int, problems: list[Problem]
) -> AttributeType | None:
    if not _IDENTIFIER.match(name):
        problems.append(Problem(SCHEMA_FILE, f"{path}: an attribute name is a Python identifier", line))
        return None
    if isinstance(spec, yaml.ScalarNode):
        fields: dict[str, Any] = {"type": _value(spec)}
    else:
        fields = {}
        for key, value, key_line in _entries(spec, path, problems):
            if key not in _SPEC_KEYS:
                problems.append(
                    Problem(SCHEMA_FILE, f"{path}: unknown key {key!r} (allowed: {', '.join(_SPEC_KEYS)})", key_line)
                )
                return None
            fields[key] = _value(value)
    type_name = fields.get("type")
    required = fields.get("required", False)
    kinds = fields.get("kinds") or []
    if type_name not in _TYPES:
        problems.append(Problem(SCHEMA_FILE, f"{path}: type {type_name!r} must be one of {', '.join(_TYPES)}", line))
    elif not isinstance(required, bool):
        problems.append(Problem(SCHEMA_FILE, f"{path}: required must be true or false", line))
    elif not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds):
        problems.append(Problem(SCHEMA_FILE, f"{path}: kinds must be a list of resource kinds", line))
    else:
        return AttributeType(type=type_name, required=required, kinds=frozenset(kinds))
    return None


def _value(node: yaml.Node) -> Any:
    return yaml.safe_load(yaml.serialize(node))


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


def canonical_network(value: str) -> str:
    """A network (or address) as an ipMatch rule value, written so that it matches canonical
    addresses (canonical_ip): an IPv4-mapped or IPv4-compatible network becomes the IPv4
    network it covers (`::ffff:10.0.0.0/104` is `10.0.0.0/8`). Anything else is kept as written."""
    try:
        network = ipaddress.ip_network(value.split("%", 1)[0], strict=False)
    except ValueError:
        return value
    if not isinstance(network, ipaddress.IPv6Network) or network.prefixlen < 96:
        return value
    packed = network.network_address.packed
    mapped = packed[:12] == bytes(10) + b"\xff\xff"
    compatible = packed[:12] == bytes(12) and int.from_bytes(packed[12:], "big") > 1
    if not (mapped or compatible):
        return value
    ipv4 = ipaddress.IPv4Network((packed[12:], network.prefixlen - 96))
    return str(ipv4) if "/" in value else str(ipv4.network_address)


def _article(type_name: str) -> str:
    return {"int": "an integer", "float": "a number", "bool": "a bool (true or false)", "string": "a string", "list": "a list of strings", "ip": "an IP address"}[type_name]
