"""Requests are refused, naming the field, before anything reaches the engine."""

from __future__ import annotations

import math

import pytest

from policy_engine.actions import Action, Party, ResourceRef
from policy_engine.errors import InvalidRequestError
from policy_engine.bundle.schema import AttributeSchema, parse_schema
from policy_engine.service.validation import canonical_action, validate_action


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


# ---- ids: one spelling of one thing -------------------------------------------------------------

INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u200e", "\u2060", "\u2062", "\ufeff", "\u00ad", "\u202e",
             "\u2066", "\u061c", "\U000e0041", "\u034f", "\ufe0f", "\u3164", "\u115f", "\u0085", "\u2028"]
LOOKALIKES = ["\u0430", "\u0435", "\u043e", "\u0440", "\u0441", "\u0455", "\u03bf", "\u03b1", "\u0578", "\u13a0"]
COMPATIBILITY = ["\uff50", "\U0001d429", "\u2170", "\ufb01", "\u00b5", "\u2126"]  # fullwidth, math bold, roman numeral, ligature, micro, ohm


@pytest.mark.parametrize("field", ["tenant", "action", "subject.id", "actor.id", "resource.id"])
@pytest.mark.parametrize("inserted", INVISIBLE + LOOKALIKES + COMPATIBILITY + ["\u2215", "\u2024", "\uff0f"])
def test_confusable_or_invisible_id_is_refused(field: str, inserted: str) -> None:
    """An invisible, look-alike or compatibility character in any id is refused, naming the field."""
    value = f"pay{inserted}ments"
    changes = {
        "tenant": {"tenant": value},
        "action": {"action": value},
        "subject.id": {"subject": Party(value)},
        "actor.id": {"actor": Party(value)},
        "resource.id": {"resource": ResourceRef("tool", value)},
    }[field]
    with pytest.raises(InvalidRequestError) as caught:
        validate_action(make(**changes))
    assert caught.value.field == field


@pytest.mark.parametrize("value", ["\u0440\u0430\u0443", "\u0441\u043e\u0440\u0443", "\u0420\u0410\u0423_2", "\u03bf\u03bd", "\u0585\u057d"])
def test_whole_script_lookalike_is_refused(value: str) -> None:
    """An id written only in non-Latin letters that are drawn like Latin ones is refused."""
    with pytest.raises(InvalidRequestError) as caught:
        validate_action(make(resource=ResourceRef("tool", value)))
    assert caught.value.field == "resource.id"


@pytest.mark.parametrize(
    "value",
    ["getWeather", "Web_Search", "caf\u00e9", "\u043f\u043e\u0438\u0441\u043a", "\u691c\u7d22tool",
     "\u3072\u3089\u304c\u306a\u30ab\u30bf\u30ab\u30ca\u6f22\u5b57", "\ud55c\uad6d\uc5b4", "\u03b1\u03b2\u03b3"],
)
def test_mixed_case_and_single_script_ids_pass(value: str) -> None:
    """Mixed case, accented Latin in NFC, one non-Latin script, or Latin with Han/kana/Hangul are accepted."""
    validate_action(make(subject=Party(value), resource=ResourceRef("tool", value)))


@pytest.mark.parametrize("kind", ["Tool", "to/ol", "..", "tool:x", "tool.x", "_tool", "9tool", "t\u043eol", "tool-x", "tool x"])
def test_kind_must_be_a_lowercase_identifier(kind: str) -> None:
    """resource.kind is a lowercase identifier (a-z, then a-z, 0-9, _)."""
    with pytest.raises(InvalidRequestError) as caught:
        validate_action(make(resource=ResourceRef(kind, "web_search")))
    assert caught.value.field == "resource.kind"


@pytest.mark.parametrize(
    ("spelled", "canonical"),
    [
        ("::ffff:10.0.0.5", "10.0.0.5"), ("::FFFF:0a00:0005", "10.0.0.5"), ("0:0:0:0:0:ffff:10.0.0.5", "10.0.0.5"),
        ("::10.0.0.5", "10.0.0.5"), ("2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
        ("fe80::1%eth0", "fe80::1"), ("10.0.0.5", "10.0.0.5"), ("::1", "::1"), ("::", "::"),
    ],
)
def test_ip_attributes_are_canonical(spelled: str, canonical: str) -> None:
    """The context's well-known address fields, and attributes typed ip, get one spelling per address."""
    schema = parse_schema("subject:\n  home: {type: ip}\n")
    action = canonical_action(make(subject=Party("alice", {"home": spelled}), context={"client_ip": spelled}), schema)
    assert action.subject.attributes["home"] == canonical and action.context["client_ip"] == canonical


def test_canonical_action_is_the_same_object_when_nothing_changes() -> None:
    """A canonical request is passed on as it is (no copy on the hot path)."""
    action = make(context={"ip": "10.0.0.1", "channel": "web"})
    assert canonical_action(action, AttributeSchema()) is action


@pytest.mark.parametrize("value", ["010.0.0.5", "10.0.0.5/8", "10.0.0.5%eth0", "localhost", "", 3, "\uff11.0.0.5"])
def test_non_address_in_an_ip_field_is_refused(value: object) -> None:
    """An IP-typed value that is not one address is refused, naming the field."""
    with pytest.raises(InvalidRequestError) as caught:
        canonical_action(make(context={"ip": value}), AttributeSchema())
    assert caught.value.field == "context.ip"


def test_schema_can_type_a_well_known_field_otherwise() -> None:
    """A set whose schema types context.ip as a string keeps its value as sent."""
    schema = parse_schema("context:\n  ip: {type: string}\n")
    assert canonical_action(make(context={"ip": "office"}), schema).context == {"ip": "office"}
