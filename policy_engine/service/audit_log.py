"""Use cases over the decision log: query, inspect, verify, replay a candidate version, quarantines.

Replay is the impact analysis before activation: it re-decides logged
requests (attributes decrypted with the server's keys) under a candidate
version and counts what would flip. Attributes stored only as keyed hashes
cannot be replayed; a rule reading one sees it missing (a denial), which the
report's `skipped` and docs/audit.md call out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from policy_engine.actions import Action, Party, ResourceRef, decide_action
from policy_engine.audit import AttributeProtector, AuditError
from policy_engine.errors import InvalidRequestError
from policy_engine.bundle.ids import fold_action
from policy_engine.bundle.schema import CASEFOLD
from policy_engine.service.policies import load_version
from policy_engine.store import PolicyRepository, audit_tables
from policy_engine.store.decision_log import ChainReport, DecisionLogRepository, StoredDecision

__all__ = ["AuditService", "DecisionDetail", "ReplayFlip", "ReplayReport"]

MAX_REPLAY = 100_000

@dataclass(frozen=True)
class DecisionDetail:
    decision: StoredDecision
    attributes: Mapping[str, Any] | None  # None when this server lacks the entry's key

@dataclass(frozen=True)
class ReplayFlip:
    decision: StoredDecision
    now_allowed: bool
    rule: str
    reason: str

@dataclass(frozen=True)
class ReplayReport:
    replayed: int
    unchanged: int
    allow_to_deny: int
    deny_to_allow: int
    skipped: int
    samples: tuple[ReplayFlip, ...]
    rules_responsible: Mapping[str, int]

class AuditService:
    """Blocking use cases (call from a worker thread)."""

    def __init__(
        self,
        database: Engine,
        versions: PolicyRepository,
        protector: AttributeProtector | None,
    ) -> None:
        self._database = database
        self._log = DecisionLogRepository(database)
        self._versions = versions
        self._protector = protector

    def query(
        self,
        *,
        subject: str | None,
        actor: str | None,
        tenant: str | None,
        denied_only: bool,
        since: datetime | None,
        limit: int,
    ) -> list[StoredDecision]:
        return self._log.query(
            subject=subject or None,
            actor=actor or None,
            tenant=tenant or None,
            denied=True if denied_only else None,
            since=since,
            limit=min(max(limit, 1), 10_000),
        )

    def get(self, decision_id: str) -> DecisionDetail:
        if not decision_id:
            raise InvalidRequestError("decision_id", "is required")
        decision = self._log.get(decision_id)
        return DecisionDetail(decision, self._reveal(decision))

    def verify(self) -> ChainReport:
        return self._log.verify()

    def replay(
        self, policy_set: str, candidate: int, *, since: datetime | None, limit: int, samples: int
    ) -> ReplayReport:
        policy = load_version(self._versions.get_version(policy_set, candidate))
        logged = [
            d
            for d in self._log.query(since=since, limit=min(limit or 10_000, MAX_REPLAY))
            if d.policy_set == policy_set
        ]
        unchanged = allow_to_deny = deny_to_allow = skipped = 0
        flips: list[ReplayFlip] = []
        responsible: Counter[str] = Counter()
        for decision in logged:
            attributes = self._reveal(decision)
            if attributes is None or decision.reason.endswith("is quarantined"):
                skipped += 1
                continue
            action = _action(decision, attributes)
            if policy.schema.id_compare == CASEFOLD:  # decided as the candidate would serve it
                action = fold_action(action)
            outcome = decide_action(policy.engine, action)
            if outcome.allowed == decision.allowed:
                unchanged += 1
                continue
            if decision.allowed:
                allow_to_deny += 1
            else:
                deny_to_allow += 1
            rule = outcome.matched[0].text if outcome.matched else "(no rule matched)"
            responsible[rule] += 1
            if len(flips) < (samples or 20):
                flips.append(ReplayFlip(decision, outcome.allowed, rule, outcome.reason))
        return ReplayReport(
            replayed=unchanged + allow_to_deny + deny_to_allow,
            unchanged=unchanged,
            allow_to_deny=allow_to_deny,
            deny_to_allow=deny_to_allow,
            skipped=skipped,
            samples=tuple(flips),
            rules_responsible=dict(responsible),
        )

    def release(self, tenant: str, principal: str, *, by: str, reason: str) -> bool:
        if not tenant:
            raise InvalidRequestError("tenant", "is required")
        if not principal:
            raise InvalidRequestError("principal", "is required")
        return audit_tables.release(self._database, tenant, principal, by, reason)

    def security_events(self, limit: int) -> list[audit_tables.SecurityEvent]:
        return audit_tables.list_events(self._database, limit=min(max(limit, 1), 1000))

    def set_legal_hold(self, tenant: str, hold: bool) -> None:
        if not tenant:
            raise InvalidRequestError("tenant", "is required")
        self._log.set_legal_hold(tenant, hold)

    def _reveal(self, decision: StoredDecision) -> Mapping[str, Any] | None:
        if self._protector is None or not decision.attributes_ciphertext:
            return None
        try:
            attributes = self._protector.reveal(decision.attributes_ciphertext, decision.key_id)
            if decision.item_index is None:
                return attributes
            return AttributeProtector.item_attributes(attributes, decision.item_index)
        except (AuditError, KeyError, IndexError, TypeError):
            return None

def _action(decision: StoredDecision, attributes: Mapping[str, Any]) -> Action:
    kind, sep, resource_id = decision.resource.partition(":")
    if not sep:
        kind, resource_id = "", decision.resource
    return Action(
        tenant=decision.tenant,
        subject=Party(decision.subject, attributes.get("subject") or {}),
        action=decision.action,
        resource=ResourceRef(kind, resource_id, attributes.get("resource") or {}),
        actor=Party(decision.actor, attributes.get("actor") or {}) if decision.actor else None,
        context=attributes.get("context") or {},
    )
