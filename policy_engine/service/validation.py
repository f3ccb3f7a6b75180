"""Canonical requests: what reaches the engine has been checked field by field.

Each refusal is an InvalidRequestError naming the field as the public
contract spells it (`subject.id`, `resource.attributes.risk`, ...).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from policy_engine import limits
from policy_engine.actions import Action, Party
from policy_engine.bundle.schema import AttributeSchema
from policy_engine.errors import InvalidRequestError

__all__ = ["validate_action", "validate_types"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# Names a str already has would shadow the attribute in a matcher (r.sub.count is str.count).
_SHADOWED = frozenset(name for name in dir(str) if not name.startswith("_"))


def validate_action(action: Action) -> None:
    """Raise InvalidRequestError for the first field of `action` that is not canonical."""
    _text("tenant", action.tenant)
    _text("action", action.action)
    _party("subject", action.subject)
    if action.actor is not None:
        _party("actor", action.actor)
    _text("resource.kind", action.resource.kind, required=False)
    if action.resource.kind != action.resource.kind.lower():
        raise InvalidRequestError("resource.kind", "must be lowercase")
    _text("resource.id", action.resource.id)
    _resource_id(action.resource.id)
    _attributes("resource.attributes", action.resource.attributes)
    _attributes("context", action.context)


def _party(name: str, party: Party) -> None:
    _text(f"{name}.id", party.id)
    _attributes(f"{name}.attributes", party.attributes)


def _text(field: str, value: str, *, required: bool = True) -> None:
    if not value:
        if required:
            raise InvalidRequestError(field, "is required")
        return
    if len(value) > limits.MAX_ID_LENGTH:
        raise InvalidRequestError(field, f"is longer than {limits.MAX_ID_LENGTH} characters")
    if _CONTROL.search(value):
        raise InvalidRequestError(field, "contains a control character")
    if value != value.strip():
        raise InvalidRequestError(field, "has leading or trailing whitespace")
    if "*" in value or "?" in value:
        raise InvalidRequestError(field, "contains a wildcard character (* or ?)")


def _resource_id(value: str) -> None:
    if value != value.lower():
        # Rules compare case-sensitively: "tool:Web_Search" would slip past a deny on
        # "tool:web_search" and still match an allow on "tool:*". Ids are lowercase.
        raise InvalidRequestError("resource.id", "must be lowercase")
    if _PERCENT_ESCAPE.search(value):
        raise InvalidRequestError("resource.id", "contains a percent-escape")
    for segment in value.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidRequestError("resource.id", "has an empty, '.' or '..' path segment")


def _attributes(field: str, attributes: Mapping[str, Any]) -> None:
    if len(attributes) > limits.MAX_ATTRIBUTES:
        raise InvalidRequestError(field, f"has more than {limits.MAX_ATTRIBUTES} attributes")
    for name, value in attributes.items():
        if len(name) > limits.MAX_ATTRIBUTE_NAME_LENGTH or not _IDENTIFIER.match(name):
            raise InvalidRequestError(f"{field}.{name}", "is not a valid attribute name")
        if name in _SHADOWED:
            raise InvalidRequestError(f"{field}.{name}", "is a reserved attribute name")
        _value(f"{field}.{name}", value, depth=1)


def _value(field: str, value: Any, depth: int) -> None:
    if depth > limits.MAX_NESTING_DEPTH:
        raise InvalidRequestError(field, f"nests deeper than {limits.MAX_NESTING_DEPTH} levels")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidRequestError(field, "is not a finite number")
    if isinstance(value, str) and _CONTROL.search(value):
        raise InvalidRequestError(field, "contains a control character")
    if isinstance(value, Mapping):
        for key, item in value.items():
            _value(f"{field}.{key}", item, depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _value(f"{field}[{index}]", item, depth + 1)


def validate_types(action: Action, schema: AttributeSchema) -> None:
    """Refuse attributes whose type differs from what the policy set's schema expects."""
    schema.check("subject", action.subject.attributes, "subject.attributes")
    if action.actor is not None:
        schema.check("actor", action.actor.attributes, "actor.attributes")
    schema.check("resource", action.resource.attributes, "resource.attributes", action.resource.kind)
    schema.check("context", action.context, "context")
