"""Canonical requests: what reaches the engine has been checked field by field.

Each refusal is an InvalidRequestError naming the field as the public
contract spells it (`subject.id`, `resource.attributes.risk`, ...).

Ids and names (tenant, action, subject and actor ids, resource kind and id)
must be one spelling of one thing: no control or invisible characters
(Unicode format characters such as zero-width spaces, other default-ignorable
code points), nothing that NFKC normalisation changes (fullwidth or
compatibility forms), no non-ASCII punctuation or symbols (a `∕` that passes
for `/`), and letters of one script (Latin with Han, Hiragana, Katakana,
Bopomofo or Hangul is allowed, as Unicode's "highly restrictive" level does;
Latin mixed with Cyrillic or Greek is not), and not only letters that are
drawn like Latin ones (Cyrillic `рау` for `pay`). A resource kind is a lowercase
identifier. IP-typed attributes are rewritten to their canonical spelling
(`canonical_attributes`).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping
from typing import Any, Protocol, Self, TypeVar

from policy_engine import limits
from policy_engine.actions import Action, Party, ResourceRef
from policy_engine.bundle.ids import fold_action, fold_id, fold_party
from policy_engine.bundle.schema import CASEFOLD, AttributeSchema, AttributeType, canonical_ip
from policy_engine.errors import InvalidRequestError

__all__ = [
    "canonical_action",
    "canonical_attributes",
    "canonical_ids",
    "canonical_parties",
    "fold_delegates",
    "item_types_can_fail",
    "validate_action",
    "validate_item",
    "validate_item_types",
    "validate_party_types",
    "validate_resource",
    "validate_types",
]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_KIND = re.compile(r"^[a-z][a-z0-9_]*$")
# Names a str already has would shadow the attribute in a matcher (r.sub.count is str.count).
_SHADOWED = frozenset(name for name in dir(str) if not name.startswith("_"))

# The checks of a text field and of a resource id are pure functions of the string, and most
# requests repeat the same few ids: remember the strings that passed (bounded; forgetting one
# only means checking it again).
_MEMO_LIMIT = 65_536
_VALID_TEXT: set[str] = set()
_VALID_RESOURCE_IDS: set[str] = set()
_VALID_KINDS: set[str] = set()


def validate_action(action: Action) -> None:
    """Raise InvalidRequestError for the first field of `action` that is not canonical."""
    _text("tenant", action.tenant)
    _text("action", action.action)
    _party("subject", action.subject)
    if action.actor is not None:
        _party("actor", action.actor)
    validate_resource(action.resource)
    _attributes("context", action.context)


def validate_item(action: str, resource: ResourceRef, context: Mapping[str, Any]) -> None:
    """validate_action for what one batch item adds to a shared part (tenant, subject, actor)
    that passed already: the same checks, in the same order, of the remaining fields."""
    _text("action", action)
    validate_resource(resource)
    _attributes("context", context)


def validate_resource(resource: ResourceRef) -> None:
    """The resource's part of validate_action: kind, id, attributes."""
    kind = resource.kind
    if kind and kind not in _VALID_KINDS:
        _text("resource.kind", kind, required=False)
        if not _KIND.match(kind):
            raise InvalidRequestError(
                "resource.kind", "must be a lowercase identifier (a-z, then a-z, 0-9 or _)"
            )
        _remember(_VALID_KINDS, kind)
    resource_id = resource.id
    if resource_id not in _VALID_RESOURCE_IDS:
        _text("resource.id", resource_id)
        _resource_id(resource_id)
        _remember(_VALID_RESOURCE_IDS, resource_id)
    _attributes("resource.attributes", resource.attributes)


def _remember(memo: set[str], value: str) -> None:
    if len(memo) >= _MEMO_LIMIT:
        memo.clear()
    memo.add(value)


def _party(name: str, party: Party) -> None:
    if party.id not in _VALID_TEXT:
        _text(f"{name}.id", party.id)
    if party.attributes:
        _attributes(f"{name}.attributes", party.attributes)


def _text(field: str, value: str, *, required: bool = True) -> None:
    if value in _VALID_TEXT:
        return
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
    if not value.isascii():
        _unicode_id(field, value)
    _remember(_VALID_TEXT, value)


def _unicode_id(field: str, value: str) -> None:
    """Refuse characters that hide or pass for others (see the module docstring)."""
    scripts: set[str] = set()
    for char in value:
        if char.isascii():
            continue
        category = unicodedata.category(char)
        if category[0] in "CZ" or _default_ignorable(char):
            raise InvalidRequestError(field, f"contains an invisible or format character (U+{ord(char):04X})")
        if category[0] in "PS":
            raise InvalidRequestError(
                field, f"contains a non-ASCII punctuation or symbol character (U+{ord(char):04X})"
            )
        if category[0] != "M":  # combining marks take their base's script
            scripts.add(_script(char))
    if not unicodedata.is_normalized("NFKC", value):
        raise InvalidRequestError(field, "is not in Unicode NFKC form (fullwidth or compatibility characters)")
    if any(char.isascii() and char.isalpha() for char in value):
        scripts.add("LATIN")
    if len(scripts) > 1 and not any(scripts <= allowed for allowed in _SCRIPT_MIXES):
        raise InvalidRequestError(field, f"mixes letters of scripts {', '.join(sorted(scripts))}")
    if scripts and "LATIN" not in scripts and all(c in _LATIN_LOOKALIKES for c in value if c.isalpha()):
        # Whole-script confusable: "рау" in Cyrillic reads as "pay".
        raise InvalidRequestError(field, f"is written only in {scripts.pop()} letters that look like Latin ones")


# Default_Ignorable_Code_Point (Unicode DerivedCoreProperties) outside categories C and Z:
# invisible, yet not format characters.
_IGNORABLE_RANGES = (
    (0x034F, 0x034F), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F), (0x3164, 0x3164),
    (0xFE00, 0xFE0F), (0xFFA0, 0xFFA0), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)
# Cyrillic, Greek and Armenian letters that are drawn like Latin ones (from Unicode's confusables).
_LATIN_LOOKALIKES = frozenset(
    "\u0430\u0435\u043e\u0440\u0441\u0443\u0445\u0455\u0456\u0458\u04bb\u04cf\u0501\u051b\u051d"  # а е о р с у х ѕ і ј һ ӏ ԁ ԛ ԝ
    "\u0410\u0412\u0415\u041a\u041c\u041d\u041e\u0420\u0421\u0422\u0425\u0423\u0406\u0408\u0405"  # А В Е К М Н О Р С Т Х У І Ј Ѕ
    "\u03bf\u03b1\u03b9\u03bd\u03c1\u03c5\u03ba"  # ο α ι ν ρ υ κ
    "\u0391\u0392\u0395\u0396\u0397\u0399\u039a\u039c\u039d\u039f\u03a1\u03a4\u03a5\u03a7"  # Α Β Ε Ζ Η Ι Κ Μ Ν Ο Ρ Τ Υ Χ
    "\u0585\u057d\u0570\u0578\u054f"  # օ ս հ ո Տ
)
# Scripts that may be mixed in one id (UTS #39, "highly restrictive").
_SCRIPT_MIXES = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
)
# Character-name prefixes that are not the name of a script.
_NAME_SCRIPTS = {"CJK": "HAN", "IDEOGRAPHIC": "HAN", "KATAKANA-HIRAGANA": "KATAKANA"}


def _default_ignorable(char: str) -> bool:
    point = ord(char)
    return any(low <= point <= high for low, high in _IGNORABLE_RANGES)


def _script(char: str) -> str:
    """A non-ASCII letter's or digit's script, as the first word of its Unicode name
    (LATIN, CYRILLIC, GREEK, CJK -> HAN, ...; ARABIC-INDIC -> ARABIC)."""
    word = unicodedata.name(char, "UNNAMED").split(" ", 1)[0]
    word = _NAME_SCRIPTS.get(word, word)
    return word.split("-", 1)[0]


def _resource_id(value: str) -> None:
    if _PERCENT_ESCAPE.search(value):
        raise InvalidRequestError("resource.id", "contains a percent-escape")
    for segment in value.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidRequestError("resource.id", "has an empty, '.' or '..' path segment")


def _attributes(field: str, attributes: Mapping[str, Any]) -> None:
    if not attributes:
        return
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


def canonical_action(action: Action, schema: AttributeSchema) -> Action:
    """The action as the policy set compares it: ids folded when it declares so (the default,
    see policy_engine.bundle.ids), IP-typed attributes in canonical form. The same object when
    it is canonical already; InvalidRequestError names an IP-typed attribute that holds no
    IP address."""
    if schema.id_compare == CASEFOLD:
        action = fold_action(action)
    parties = canonical_parties(action, schema)
    resource = action.resource
    resource_attributes = canonical_attributes(schema, "resource", resource.attributes, "resource.attributes")
    context = canonical_attributes(schema, "context", action.context, "context")
    if resource_attributes is resource.attributes and context is action.context:
        return parties
    return parties._replace(resource=resource._replace(attributes=resource_attributes), context=context)


class _Parties(Protocol):
    tenant: str
    subject: Party
    actor: Party | None

    def _replace(self, **changes: Any) -> Self: ...


_P = TypeVar("_P", bound=_Parties)


def canonical_ids(parties: _P, schema: AttributeSchema) -> _P:
    """`parties` (an Action or what a batch's items share) with tenant, subject and actor ids
    folded when the set compares ids case-insensitively; the same object when nothing changes."""
    if schema.id_compare != CASEFOLD:
        return parties
    tenant = fold_id(parties.tenant)
    subject = fold_party(parties.subject)
    actor = fold_party(parties.actor) if parties.actor is not None else None
    delegates = getattr(parties, "delegates", ())
    folded_delegates = fold_delegates(delegates, schema)
    if (
        tenant == parties.tenant
        and subject is parties.subject
        and actor is parties.actor
        and folded_delegates == delegates
    ):
        return parties
    if delegates:
        return parties._replace(tenant=tenant, subject=subject, actor=actor, delegates=folded_delegates)
    return parties._replace(tenant=tenant, subject=subject, actor=actor)


def fold_delegates(delegates: tuple[Party, ...], schema: AttributeSchema) -> tuple[Party, ...]:
    """The earlier actors of a delegation chain, folded as the set compares ids."""
    if schema.id_compare != CASEFOLD or not delegates:
        return delegates
    return tuple(fold_party(party) for party in delegates)


def canonical_parties(parties: _P, schema: AttributeSchema) -> _P:
    """`parties` with the subject's and actor's IP-typed attributes in canonical form."""
    subject, actor = parties.subject, parties.actor
    subject_attributes = canonical_attributes(schema, "subject", subject.attributes, "subject.attributes")
    actor_attributes = (
        canonical_attributes(schema, "actor", actor.attributes, "actor.attributes") if actor is not None else None
    )
    if subject_attributes is subject.attributes and (actor is None or actor_attributes is actor.attributes):
        return parties
    return parties._replace(
        subject=subject._replace(attributes=subject_attributes),
        actor=actor._replace(attributes=actor_attributes) if actor is not None else None,
    )


def canonical_attributes(
    schema: AttributeSchema, party: str, attributes: Mapping[str, Any], field_prefix: str
) -> Mapping[str, Any]:
    """`attributes` with every IP-typed one in canonical form (the same mapping when all are)."""
    if not attributes:
        return attributes
    names = schema.ip_names(party)
    if not names:
        return attributes
    canonical: dict[str, Any] | None = None
    for name in names.intersection(attributes):
        value = attributes[name]
        spelled = canonical_ip(value)
        if spelled is None:
            raise InvalidRequestError(f"{field_prefix}.{name}", "must be an IP address")
        if spelled != value:
            if canonical is None:
                canonical = dict(attributes)
            canonical[name] = spelled
    return attributes if canonical is None else canonical


def validate_types(action: Action, schema: AttributeSchema) -> None:
    """Refuse attributes whose type differs from what the policy set's schema expects."""
    validate_party_types(schema, action.subject, action.actor)
    validate_item_types(schema, action.resource, action.context)


def validate_party_types(schema: AttributeSchema, subject: Party, actor: Party | None) -> None:
    """validate_types for the subject and the actor (what the items of a batch share)."""
    _check_types(schema, "subject", subject.attributes, "subject.attributes")
    if actor is not None:
        _check_types(schema, "actor", actor.attributes, "actor.attributes")


def validate_item_types(schema: AttributeSchema, resource: ResourceRef, context: Mapping[str, Any]) -> None:
    """validate_types for the resource and the context."""
    _check_types(schema, "resource", resource.attributes, "resource.attributes", resource.kind)
    _check_types(schema, "context", context, "context")


def item_types_can_fail(schema: AttributeSchema, kind: str) -> bool:
    """False when validate_item_types cannot refuse a resource of this kind and a context that
    carry no attributes (the schema requires none of them): plain items can skip it."""
    if _has_required(schema, "context"):
        return True
    specs: Mapping[str, AttributeType] = schema.parties.get("resource", {})
    return any(spec.required and (not spec.kinds or kind in spec.kinds) for spec in specs.values())


def _check_types(
    schema: AttributeSchema, party: str, attributes: Mapping[str, Any], field_prefix: str, kind: str = ""
) -> None:
    # No attributes: only a required attribute can be missing, and most parties have none.
    if attributes or _has_required(schema, party):
        schema.check(party, attributes, field_prefix, kind)


_REQUIRED: dict[tuple[int, str], tuple[AttributeSchema, bool]] = {}


def _has_required(schema: AttributeSchema, party: str) -> bool:
    key = (id(schema), party)
    known = _REQUIRED.get(key)
    if known is not None and known[0] is schema:
        return known[1]
    specs: Mapping[str, AttributeType] = schema.parties.get(party, {})
    required = any(spec.required for spec in specs.values())
    if len(_REQUIRED) >= 256:
        _REQUIRED.clear()
    _REQUIRED[key] = (schema, required)  # holds the schema, so its id is not reused meanwhile
    return required
