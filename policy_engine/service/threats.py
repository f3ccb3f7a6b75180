"""Threat signals: a subject or actor denied too often, too fast, is probing; quarantine it.

A prompt-injected agent tends to try tool after tool. Per tenant, more than
`denials` denials within `window_seconds` for one principal raises a security
event (log line, metric, a row in security_events) and, when configured,
quarantines that actor: every decision for it is a denial with reason
"quarantined" until the quarantine expires or an operator releases it.
Quarantines live in the database, so every replica enforces them (each
refreshes its copy every second).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from policy_engine.metrics import METRICS
from policy_engine.store import audit_tables

__all__ = ["NO_THREAT_POLICY", "ThreatMonitor", "ThreatPolicy"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ThreatPolicy:
    """More than `denials` denials in `window_seconds` is probing; quarantine for `quarantine_seconds` (0: never)."""

    denials: int = 0  # 0 disables the signal
    window_seconds: float = 60.0
    quarantine_seconds: float = 0.0


NO_THREAT_POLICY = ThreatPolicy()


class ThreatMonitor:
    """Counts denials per (tenant, principal) and enforces quarantines shared through the database."""

    def __init__(
        self,
        engine: Engine | None,
        policies: Mapping[str, ThreatPolicy] | None = None,
        default: ThreatPolicy = NO_THREAT_POLICY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._policies = dict(policies or {})
        self._default = default
        self._clock = clock
        self._denials: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._quarantined: frozenset[tuple[str, str]] = frozenset()
        self._writes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="threats")

    def is_quarantined(self, tenant: str, principal: str) -> bool:
        return (tenant, principal) in self._quarantined

    def observe(self, tenant: str, principal: str, role: str, allowed: bool) -> None:
        """Count a denial of `principal` (the "subject" or the "actor" of a decision)."""
        if allowed:
            return
        policy = self._policies.get(tenant, self._default)
        if policy.denials <= 0:
            return
        now = self._clock()
        window = self._denials[(tenant, principal)]
        window.append(now)
        while window and window[0] < now - policy.window_seconds:
            window.popleft()
        if len(window) <= policy.denials:
            return
        window.clear()
        quarantine = role == "actor" and policy.quarantine_seconds > 0
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

    def refresh(self) -> None:
        """Reload the active quarantines from the database (blocking; run off the event loop)."""
        if self._engine is not None:
            self._quarantined = frozenset(audit_tables.active_quarantines(self._engine))

    def close(self) -> None:
        self._writes.shutdown(wait=True)

    def _persist(self, tenant: str, principal: str, role: str, policy: ThreatPolicy, quarantine: bool) -> None:
        assert self._engine is not None
        try:
            audit_tables.add_event(
                self._engine,
                tenant=tenant,
                kind="denial_burst",
                principal=principal,
                detail={"role": role, "denials": policy.denials, "window_seconds": policy.window_seconds},
            )
            if quarantine:
                until = datetime.now(UTC) + timedelta(seconds=policy.quarantine_seconds)
                audit_tables.quarantine(
                    self._engine, tenant, principal, until, f"more than {policy.denials} denials in {policy.window_seconds}s"
                )
        except Exception:
            log.exception("cannot record security event for %r", principal)
