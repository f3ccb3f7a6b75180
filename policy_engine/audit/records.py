"""What the service hands the audit trail: a plain, immutable record per decision, or one per
batch request (DecisionGroup)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any, NamedTuple, overload

import orjson

__all__ = [
    "PLAIN_ITEM_ATTRIBUTES",
    "DecisionGroup",
    "DecisionRecord",
    "GroupItem",
    "PlainItems",
    "stored_items_json",
    "weight",
]

_NO_ATTRIBUTES: Mapping[str, Mapping[str, Any]] = MappingProxyType({})
# What a group item with neither resource attributes nor context records as its own attributes.
PLAIN_ITEM_ATTRIBUTES: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {"resource": _NO_ATTRIBUTES, "context": _NO_ATTRIBUTES}
)
# The stored form of an item (store.decision_log's GROUP_ITEM_FIELDS): a GroupItem's first
# seven fields, then its hashed attributes as JSON ("" for none).
StoredItem = tuple[str, str, str, bool, str, str, str, str]
_STORED_ITEMS_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)


class DecisionRecord(NamedTuple):
    """One decision (a Check, or one item of BatchCheck/FilterAllowed).

    Carries no token and no request metadata. `attributes` is
    {"subject": {...}, "actor": {...}, "resource": {...}, "context": {...}}; it is encrypted
    (or, per configured attribute, hashed) by the writer, never stored in clear.

    A named tuple, not a dataclass: the service builds one per decision, and the writer reads
    entries by position, so a plain tuple with these fields in this order is an entry too
    (that is what crosses the process boundary to the writer process).
    """

    decision_id: str
    decided_at: datetime
    policy_set: str
    policy_version: int
    tenant: str
    subject: str
    actor: str
    caller: str
    action: str
    resource: str
    allowed: bool
    rule: str
    reason: str
    request_id: str
    latency_us: int
    attributes: Mapping[str, Mapping[str, Any]] = _NO_ATTRIBUTES


class GroupItem(NamedTuple):
    """One decision of a DecisionGroup: what is its own. `attributes` holds its own parties
    ({"resource": {...}, "context": {...}}); the subject's and actor's are the group's."""

    id_suffix: str
    action: str
    resource: str
    allowed: bool
    rule: str
    reason: str
    request_id: str
    attributes: Mapping[str, Mapping[str, Any]] = _NO_ATTRIBUTES


class DecisionGroup(NamedTuple):
    """The decisions of one BatchCheck or FilterAllowed request, handed over as one record.

    What the items share is here once; each item's decision id is `id_prefix` followed by its
    `id_suffix`. The decision log stores a group as one row (store.decision_log), and counts it
    as len(items) entries everywhere (queue bound, written, lost). `attributes` holds the shared
    parties ({"subject": {...}, "actor": {...}}).
    """

    id_prefix: str
    decided_at: datetime
    policy_set: str
    policy_version: int
    tenant: str
    subject: str
    actor: str
    caller: str
    latency_us: int
    attributes: Mapping[str, Mapping[str, Any]]
    items: Sequence[GroupItem]

    def records(self) -> list[DecisionRecord]:
        """The group as one DecisionRecord per item (for sinks that keep entries one by one)."""
        shared = self[1:8]
        return [
            DecisionRecord(
                self.id_prefix + item[0], *shared, item[1], item[2], item[3], item[4], item[5], item[6],
                self.latency_us, {**self.attributes, **item[7]},
            )
            for item in self.items
        ]


class PlainItems(Sequence[GroupItem]):
    """The items of a DecisionGroup when none has attributes of its own (a FilterAllowed's
    candidates, a BatchCheck of names without context), kept in the form the decision log
    stores: StoredItem rows, whose hashed attributes are all "".

    Such items need no redaction, encryption or hashing, so they can be encoded once, as the
    JSON the group row stores (`text`), and cross to the writer process as that one string:
    pickling a hundred GroupItem tuples there, unpickling them, and encoding them as JSON in the
    writer cost more CPU than deciding them. Indexing gives GroupItems (with
    PLAIN_ITEM_ATTRIBUTES), for the sinks and paths that read items one by one.
    """

    __slots__ = ("_rows", "_text", "first_suffix", "all_allowed", "_count")

    def __init__(self, rows: Sequence[StoredItem] | None, *, text: str | None = None,
                 count: int = 0, first_suffix: str = "", all_allowed: bool = True) -> None:
        self._rows = rows
        self._text = text
        if rows is not None:
            count = len(rows)
            first_suffix = rows[0][0] if rows else ""
            all_allowed = all(row[3] for row in rows)
        self._count = count
        self.first_suffix = first_suffix
        self.all_allowed = all_allowed

    @property
    def text(self) -> str:
        """The items as the group row's `items` column stores them (a JSON array of rows)."""
        if self._text is None:
            self._text = stored_items_json(self._rows or ())
        return self._text

    def _stored(self) -> Sequence[StoredItem]:
        if self._rows is None:
            self._rows = [tuple(row) for row in json.loads(self._text or "[]")]  # type: ignore[misc]
        return self._rows

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> GroupItem: ...
    @overload
    def __getitem__(self, index: slice) -> PlainItems: ...
    def __getitem__(self, index: int | slice) -> GroupItem | PlainItems:
        if isinstance(index, slice):
            return PlainItems(self._stored()[index])
        return GroupItem(*self._stored()[index][:7], PLAIN_ITEM_ATTRIBUTES)

    def __reduce__(self) -> tuple[Any, ...]:
        # Across processes as the one JSON text, not as rows.
        return (_plain_items, (self.text, self._count, self.first_suffix, self.all_allowed))

    def __repr__(self) -> str:
        return f"PlainItems({self._count} items)"


def stored_items_json(rows: Sequence[StoredItem]) -> str:
    """The `items` column of a group row: its StoredItem rows as a JSON array."""
    try:
        return orjson.dumps(rows, default=str).decode("utf-8")
    except TypeError:  # a text orjson refuses (a lone surrogate): the standard library takes it
        return _STORED_ITEMS_JSON.encode(rows)


def _plain_items(text: str, count: int, first_suffix: str, all_allowed: bool) -> PlainItems:
    return PlainItems(None, text=text, count=count, first_suffix=first_suffix, all_allowed=all_allowed)


def weight(unit: DecisionRecord | DecisionGroup | Sequence[DecisionRecord]) -> int:
    """How many decisions `unit` holds: a group its items, a sequence of records its length."""
    return len(unit.items) if type(unit) is DecisionGroup else len(unit)
