"""Threat signals: a subject or agent denied too often, too fast, is probing; quarantine it.

A prompt-injected agent tends to try tool after tool. Per tenant, more than
`denials` denials within `window_seconds` raises a security event (log line,
metric, a row in security_events) and, when `quarantine_seconds` is set,
quarantines what was probing: every decision for it is then a denial with
reason "quarantined" until the quarantine expires or an operator releases it.

What is counted, and what a burst quarantines:

- a subject's denials (with or without an actor): a security event only;
- the denials of one agent acting for one subject: the (subject, actor) pair
  is quarantined, named `<actor>?subject=<subject>` (neither id may contain
  `?`, so the name is unambiguous). The agent keeps serving every other user:
  one user (or an LLM retrying a denied tool for them) cannot take a shared
  agent away from the tenant;
- an agent's denials across subjects: the agent is quarantined for everyone
  only when the burst comes from at least `actor_subjects` distinct subjects.

The windows live in a Counters (service/counters.py): per process, or shared
by every replica through Redis. Quarantines live in the database, so every
replica enforces them (each refreshes its copy every second).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from policy_engine.metrics import METRICS
from policy_engine.service.counters import Counters, LocalCounters
from policy_engine.store import audit_tables

__all__ = ["NO_THREAT_POLICY", "ThreatMonitor", "ThreatPolicy", "pair_name"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ThreatPolicy:
    """More than `denials` denials in `window_seconds` is probing; quarantine for `quarantine_seconds`
    (0: never); an actor-wide burst needs denials of at least `actor_subjects` distinct subjects."""

    denials: int = 0  # 0 disables the signal
    window_seconds: float = 60.0
    quarantine_seconds: float = 0.0
    actor_subjects: int = 3


NO_THREAT_POLICY = ThreatPolicy()


def pair_name(subject: str, actor: str) -> str:
    """How a quarantine of `actor` acting for `subject` is named (in the database, events, release)."""
    return f"{actor}?subject={subject}"


class ThreatMonitor:
    """Counts denials per subject, per (subject, actor) pair and per actor; enforces quarantines
    shared through the database."""

    def __init__(
        self,
        engine: Engine | None,
        policies: Mapping[str, ThreatPolicy] | None = None,
        default: ThreatPolicy = NO_THREAT_POLICY,
        counters: Counters | None = None,
    ) -> None:
        self._engine = engine
        self._policies = dict(policies or {})
        self._default = default
        self._counters: Counters = counters if counters is not None else LocalCounters()
        self._quarantined: frozenset[tuple[str, str]] = frozenset()
        self._writes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="threats")

    def quarantine_of(self, tenant: str, subject: str, actor: str | None) -> tuple[str, str] | None:
        """(role, name) of the quarantine that holds these parties; None when none does."""
        quarantined = self._quarantined
        if not quarantined:
            return None
        if (tenant, subject) in quarantined:
            return "subject", subject
        if actor is not None:
            if (tenant, actor) in quarantined:
                return "actor", actor
            pair = pair_name(subject, actor)
            if (tenant, pair) in quarantined:
                return "actor", pair
        return None

    def is_quarantined(self, tenant: str, principal: str) -> bool:
        return (tenant, principal) in self._quarantined

    def observe_denial(self, tenant: str, subject: str, actor: str | None) -> None:
        """Count a denial of `subject` (through `actor`, when one acted)."""
        policy = self._policies.get(tenant, self._default)
        if policy.denials <= 0:
            return
        counters, window, limit = self._counters, policy.window_seconds, policy.denials
        if counters.burst(f"subject|{tenant}|{subject}", subject, window, limit):
            self._signal(tenant, "subject", subject, policy, quarantine=False)
        if actor is None:
            return
        quarantine = policy.quarantine_seconds > 0
        if counters.burst(f"pair|{tenant}|{actor}|{subject}", subject, window, limit):
            self._signal(tenant, "pair", pair_name(subject, actor), policy, quarantine)
        if counters.burst(f"actor|{tenant}|{actor}", subject, window, limit, policy.actor_subjects):
            self._signal(tenant, "actor", actor, policy, quarantine)

    def refresh(self) -> None:
        """Reload the active quarantines from the database (blocking; run off the event loop)."""
        if self._engine is not None:
            self._quarantined = frozenset(audit_tables.active_quarantines(self._engine))

    def close(self) -> None:
        self._writes.shutdown(wait=True)
        close = getattr(self._counters, "close", None)
        if close is not None:
            close()

    def _signal(self, tenant: str, role: str, principal: str, policy: ThreatPolicy, quarantine: bool) -> None:
        log.warning(
            "security event: %s %r in tenant %r denied more than %d times in %ss%s",
            role,
            principal,
            tenant,
            policy.denials,
            policy.window_seconds,
            "; quarantined" if quarantine else "",
        )
        METRICS.security_events.labels(kind="denial_burst").inc()
        if quarantine:
            self._quarantined = self._quarantined | {(tenant, principal)}
        if self._engine is not None:
            self._writes.submit(self._persist, tenant, principal, role, policy, quarantine)

    def _persist(self, tenant: str, principal: str, role: str, policy: ThreatPolicy, quarantine: bool) -> None:
        assert self._engine is not None
        try:
            detail: dict[str, object] = {"role": role, "denials": policy.denials, "window_seconds": policy.window_seconds}
            if role == "actor":
                detail["subjects"] = policy.actor_subjects
            audit_tables.add_event(self._engine, tenant=tenant, kind="denial_burst", principal=principal, detail=detail)
            if quarantine:
                until = datetime.now(UTC) + timedelta(seconds=policy.quarantine_seconds)
                audit_tables.quarantine(
                    self._engine, tenant, principal, until, f"more than {policy.denials} denials in {policy.window_seconds}s"
                )
        except Exception:
            log.exception("cannot record security event for %r", principal)
