"""What the service hands the audit trail per decision: a plain, immutable record."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, NamedTuple

__all__ = ["DecisionRecord"]

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
