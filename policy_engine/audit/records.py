"""What the service hands the audit trail: a plain, immutable record per decision, or one per
batch request (DecisionGroup)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any, NamedTuple

__all__ = ["DecisionGroup", "DecisionRecord", "GroupItem", "weight"]

_NO_ATTRIBUTES: Mapping[str, Mapping[str, Any]] = MappingProxyType({})


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


def weight(unit: DecisionRecord | DecisionGroup | Sequence[DecisionRecord]) -> int:
    """How many decisions `unit` holds: a group its items, a sequence of records its length."""
    return len(unit.items) if type(unit) is DecisionGroup else len(unit)
