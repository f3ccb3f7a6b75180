"""Prometheus metrics of the service, in one place. Served on their own port when enabled."""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

__all__ = ["METRICS", "Metrics"]


class Metrics:
    """Every metric the service exports, on a registry of its own (tests can make fresh ones)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        # Counted on every decision: plain numbers read at scrape time (see DecisionCounts).
        self.decisions = DecisionCounts("policy_engine_decisions", "Decisions made")
        self.decision_seconds = DecisionTimes(
            "policy_engine_decision_seconds",
            "Time to decide one action, validation included",
            (0.00001, 0.00002, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.005, 0.02, 0.1),
        )
        r.register(self.decisions)
        r.register(self.decision_seconds)
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
        self.audit_waits = Counter(
            "policy_engine_audit_waits",
            "Requests that waited for room in the decision log's queue (backpressure), by outcome",
            ["outcome"],
            registry=r,
        )
        self.audit_wait_seconds = Counter(
            "policy_engine_audit_wait_seconds", "Time requests spent waiting for decision log room", registry=r
        )
        self.refused = Counter(
            "policy_engine_refused_requests", "Requests refused before deciding", ["code"], registry=r
        )
        self.admission_refused = Counter(
            "policy_engine_admission_refused", "Decision RPCs refused as overload", ["reason"], registry=r
        )
        self.auth_failures = Counter(
            "policy_engine_authentication_failures", "Failed authentications", ["reason"], registry=r
        )
        self.security_events = Counter(
            "policy_engine_security_events", "Threat signals raised", ["kind"], registry=r
        )
        self.undecodable = Counter(
            "policy_engine_undecodable_requests", "Request bodies refused unparsed", ["reason"], registry=r
        )

    def count_decisions(self, policy_set: str, allowed: bool, count: int = 1) -> None:
        """Add `count` decisions to policy_engine_decisions."""
        self.decisions.add(policy_set, allowed, count)

    def observe_decision_seconds(self, seconds: float, count: int = 1) -> None:
        """`count` observations of `seconds` each (the items of a batch: its time divided by its size)."""
        self.decision_seconds.observe(seconds, count)


class DecisionCounts(Collector):
    """A counter of decisions by policy set and result, kept as plain numbers and turned into a
    metric family when scraped. prometheus_client's Counter takes a lock and several calls per
    increment, on every request's path; here one increment is a dict update under one lock."""

    def __init__(self, name: str, documentation: str) -> None:
        self._name, self._documentation = name, documentation
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, bool], float] = {}

    def add(self, policy_set: str, allowed: bool, count: int = 1) -> None:
        key = (policy_set, allowed)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + count

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            counts = dict(self._counts)
        family = CounterMetricFamily(self._name, self._documentation, labels=["policy_set", "result"])
        for (policy_set, allowed), value in sorted(counts.items()):
            family.add_metric([policy_set, "allow" if allowed else "deny"], value)
        yield family


class DecisionTimes(Collector):
    """A histogram of decision times, kept as plain numbers like DecisionCounts."""

    def __init__(self, name: str, documentation: str, bounds: tuple[float, ...]) -> None:
        self._name, self._documentation = name, documentation
        self._bounds = tuple(sorted(bounds))
        self._lock = threading.Lock()
        self._buckets = [0] * (len(self._bounds) + 1)  # the last: above every bound (+Inf)
        self._sum = 0.0

    def observe(self, seconds: float, count: int = 1) -> None:
        """`count` observations of `seconds` each."""
        if count <= 0:
            return
        index = bisect.bisect_left(self._bounds, seconds)  # a bound's bucket holds values <= it
        with self._lock:
            self._buckets[index] += count
            self._sum += seconds * count

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            buckets, total = list(self._buckets), self._sum
        cumulative, running = [], 0
        for bound, count in zip((*self._bounds, float("inf")), buckets, strict=True):
            running += count
            cumulative.append((floatToGoString(bound), running))
        family = HistogramMetricFamily(self._name, self._documentation)
        family.add_metric([], cumulative, total)
        yield family


# The process-wide metrics; the server exposes this registry when --metrics-listen is set.
METRICS = Metrics()
