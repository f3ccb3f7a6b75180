"""What the service hands the audit trail per decision: a plain, frozen record."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["DecisionRecord"]


@dataclass(frozen=True)
class DecisionRecord:
    """One decision (a Check, or one item of BatchCheck/FilterAllowed).

    Carries no token and no request metadata. `attributes` is
    {"subject": {...}, "actor": {...}, "resource": {...}, "context": {...}}; it is encrypted
    (or, per configured attribute, hashed) by the writer, never stored in clear.
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
    attributes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
