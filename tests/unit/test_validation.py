"""Requests are refused, naming the field, before anything reaches the engine."""

from __future__ import annotations

import math

import pytest

from policy_engine.actions import Action, Party, ResourceRef
from policy_engine.errors import InvalidRequestError
from policy_engine.service.validation import validate_action


def make(**changes):  # type: ignore[no-untyped-def]
    fields = dict(
        tenant="acme",
        subject=Party("alice", {"mfa": True}),
        action="invoke",
        resource=ResourceRef("tool", "web_search"),
    )
    fields.update(changes)
    return Action(**fields)


def test_canonical_request_passes() -> None:
    """A complete, canonical request is accepted."""
    validate_action(make(actor=Party("agent:helper"), context={"ip": "10.0.0.1"}))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"tenant": ""}, "tenant"),
        ({"action": ""}, "action"),
        ({"subject": Party("")}, "subject.id"),
        ({"resource": ResourceRef("tool", "")}, "resource.id"),
        ({"tenant": "a" * 257}, "tenant"),
        ({"subject": Party("alice\nadmin")}, "subject.id"),
        ({"resource": ResourceRef("data", "finance/../hr")}, "resource.id"),
        ({"resource": ResourceRef("data", "/data/../admin")}, "resource.id"),
        ({"resource": ResourceRef("tool", "web_search/")}, "resource.id"),
        ({"resource": ResourceRef("data", "%2e%2e/secrets")}, "resource.id"),
        ({"resource": ResourceRef("tool", "*")}, "resource.id"),
        ({"resource": ResourceRef("Tool", "web_search")}, "resource.kind"),
        ({"actor": Party("agent:*")}, "actor.id"),
        ({"subject": Party("alice", {"amount": math.nan})}, "subject.attributes.amount"),
        ({"subject": Party("alice", {"limit": math.inf})}, "subject.attributes.limit"),
        ({"subject": Party("alice", {"count": 3})}, "subject.attributes.count"),
        ({"subject": Party("alice", {"bad-name": 3})}, "subject.attributes.bad-name"),
        ({"context": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": 1}}}}}}}}}}, "context.a"),
    ],
)
def test_bad_field_is_named(changes, field) -> None:  # type: ignore[no-untyped-def]
    """Each non-canonical value is refused with an error naming its field."""
    with pytest.raises(InvalidRequestError) as caught:
        validate_action(make(**changes))
    assert caught.value.field.startswith(field)
