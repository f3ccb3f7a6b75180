"""Assemble the audit trail, threat signals and metrics endpoint from settings."""

from __future__ import annotations

import json
import logging
import os
import socket
from pathlib import Path

from prometheus_client import start_http_server
from sqlalchemy import Engine

from policy_engine.audit import AttributeProtector, AuditSink, DecisionLog, NullSink, Retention
from policy_engine.audit.process import DecisionLogProcess
from policy_engine.config import AuditSettings, RedisSettings, ThreatSettings, split_host_port
from policy_engine.metrics import METRICS
from policy_engine.service.policies import PolicyRegistry
from policy_engine.server.security import shared_counters
from policy_engine.service.threats import ThreatMonitor, ThreatPolicy
from policy_engine.store import open_database
from policy_engine.store.decision_log import DecisionLogRepository

__all__ = ["build_audit", "build_threats", "start_metrics"]

log = logging.getLogger(__name__)


def build_audit(
    audit: AuditSettings, database: Engine, listen: str, db_url: str
) -> tuple[AuditSink, Retention | None, AttributeProtector | None]:
    """The decision log (or a NullSink when disabled), its retention job, and its keys."""
    if not audit.enabled:
        log.warning("decision log disabled: decisions are not audited")
        return NullSink(), None, None
    protector = _protector(audit)
    replica_id = audit.replica_id or os.environ.get("POLICY_ENGINE_REPLICA_ID") or (
        f"{socket.gethostname()}:{split_host_port(listen)[1]}"
    )
    sink: AuditSink
    if audit.writer == "process":
        sink = DecisionLogProcess(
            db_url,
            replica_id=replica_id,
            spill_dir=Path(audit.spill_dir).resolve(),
            protector=protector,
            queue_size=audit.queue_size,
            on_loss=audit.on_loss,
            priority=audit.writer_priority,
        )
    else:
        sink = DecisionLog(
            # its own engine: a deadline that passes cuts the connections of the writer's engine
            open_database(db_url, client_timeouts=True),
            replica_id=replica_id,
            spill_dir=audit.spill_dir,
            protector=protector,
            queue_size=audit.queue_size,
            on_loss=audit.on_loss,
        )
    retention = None
    if audit.retention_days:
        retention = Retention(DecisionLogRepository(database), audit.retention_days)
        retention.start()
    return sink, retention, protector


def _protector(audit: AuditSettings) -> AttributeProtector:
    if audit.keys_file is not None:
        return AttributeProtector.from_file(audit.keys_file, hashed=audit.hashed)
    if os.environ.get("POLICY_ENGINE_AUDIT_KEYS"):
        return AttributeProtector.from_env(hashed=audit.hashed)
    # Embedded default: a key generated once, readable only by this user, beside the spill files.
    generated = Path(audit.spill_dir) / "audit-keys.json"
    if not generated.exists():
        generated.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "active": "local-1",
            "keys": {"local-1": AttributeProtector.generate_key()},
            "hash_key": AttributeProtector.generate_key(),
        }
        fd = os.open(generated, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(document, handle)
        log.warning("generated a decision-log encryption key at %s; configure audit.keys_file in production", generated)
    return AttributeProtector.from_file(generated, hashed=audit.hashed)


def build_threats(threats: ThreatSettings, database: Engine, redis: RedisSettings | None = None) -> ThreatMonitor:
    def policy(values: tuple[float, ...]) -> ThreatPolicy:
        return ThreatPolicy(int(values[0]), float(values[1]), float(values[2]), *(int(v) for v in values[3:4]))

    return ThreatMonitor(
        database,
        {tenant: policy(values) for tenant, values in threats.tenants.items()},
        policy(threats.default),
        counters=shared_counters(redis),
    )


def start_metrics(listen: str | None) -> None:
    """Serve /metrics on its own port (off unless configured)."""
    if not listen:
        return
    host, port = split_host_port(listen)
    start_http_server(port, addr=host, registry=METRICS.registry)
    log.info("metrics on http://%s:%d/metrics", host, port)


def observe_gauges(sink: AuditSink, registry: PolicyRegistry) -> None:
    """Copy the decision log's counters and the caches' hit ratios into the metrics."""
    stats = getattr(sink, "stats", None)
    if stats is not None:
        METRICS.audit_queue_depth.set(stats.queued)
        for fate in ("written", "spilled", "replayed", "lost"):
            METRICS.audit_entries.labels(fate=fate).set(getattr(stats, fate))
    for name, policy in registry.snapshot().items():
        ratio = policy.engine.cache_hit_ratio
        if ratio is not None:
            METRICS.cache_hit_ratio.labels(policy_set=name).set(ratio)
