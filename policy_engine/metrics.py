"""Prometheus metrics of the service, in one place. Served on their own port when enabled."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["METRICS", "Metrics"]


class Metrics:
    """Every metric the service exports, on a registry of its own (tests can make fresh ones)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.decisions = Counter(
            "policy_engine_decisions", "Decisions made", ["policy_set", "result"], registry=r
        )
        self.decision_seconds = Histogram(
            "policy_engine_decision_seconds",
            "Time to decide one action, validation included",
            buckets=(0.00001, 0.00002, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.005, 0.02, 0.1),
            registry=r,
        )
        self.cache_hit_ratio = Gauge(
            "policy_engine_cache_hit_ratio",
            "Share of decisions answered from the cache, for the loaded version of each set",
            ["policy_set"],
            registry=r,
        )
        self.active_version = Gauge(
            "policy_engine_active_version", "Policy version loaded, per set", ["policy_set"], registry=r
        )
        self.reloads = Counter(
            "policy_engine_reloads", "Policy version loads", ["result"], registry=r
        )
        self.audit_queue_depth = Gauge(
            "policy_engine_audit_queue_depth", "Decision log entries waiting to be written", registry=r
        )
        self.audit_entries = Gauge(
            "policy_engine_audit_entries",
            "Decision log entries by fate since start (written, spilled, replayed, lost)",
            ["fate"],
            registry=r,
        )
        self.refused = Counter(
            "policy_engine_refused_requests", "Requests refused before deciding", ["code"], registry=r
        )
        self.auth_failures = Counter(
            "policy_engine_authentication_failures", "Failed authentications", ["reason"], registry=r
        )
        self.security_events = Counter(
            "policy_engine_security_events", "Threat signals raised", ["kind"], registry=r
        )
        self._decision_counts: dict[tuple[str, bool], Any] = {}

    def count_decisions(self, policy_set: str, allowed: bool, count: int = 1) -> None:
        """Add `count` decisions to policy_engine_decisions (the labelled child is looked up once)."""
        key = (policy_set, allowed)
        child = self._decision_counts.get(key)
        if child is None:
            child = self.decisions.labels(policy_set, "allow" if allowed else "deny")
            if len(self._decision_counts) < 1024:
                self._decision_counts[key] = child
        child.inc(count)

    def observe_decision_seconds(self, seconds: float, count: int = 1) -> None:
        """`count` observations of `seconds` each (the items of a batch: its time divided by its size)."""
        observe_many(self.decision_seconds, seconds, count)


def observe_many(histogram: Histogram, amount: float, count: int) -> None:
    """What `count` calls of `histogram.observe(amount)` do, at the cost of one."""
    if count == 1:
        histogram.observe(amount)
        return
    if count <= 0:
        return
    try:  # prometheus_client's internals; fall back to one observe per item if they change
        bounds, buckets, total = histogram._upper_bounds, histogram._buckets, histogram._sum  # noqa: SLF001
    except AttributeError:
        for _ in range(count):
            histogram.observe(amount)
        return
    total.inc(amount * count)
    for bound, bucket in zip(bounds, buckets, strict=True):
        if amount <= bound:
            bucket.inc(count)
            break


# The process-wide metrics; the server exposes this registry when --metrics-listen is set.
METRICS = Metrics()
