"""Audit tables (decision log, its purge checkpoints, admin audit, security signals) and the
small repository functions of quarantines and security events.

The tables are declared on the shared `policy_engine.store.tables.metadata`; the schema itself
is created by migration 0004 only. `decision_log` refuses UPDATE (database triggers) and allows
DELETE only so that retention can purge; every purge batch writes a `decision_log_checkpoints`
row in the same transaction, so a purge can be told from a deletion. Checkpoints and
`admin_audit` rows refuse UPDATE and DELETE.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    insert,
    select,
    update,
)

from policy_engine.store.tables import metadata

__all__ = [
    "SecurityEvent",
    "active_quarantines",
    "add_event",
    "admin_audit",
    "decision_log",
    "decision_log_checkpoints",
    "list_events",
    "quarantine",
    "quarantines",
    "release",
    "security_events",
    "tenant_settings",
]

_Id = BigInteger().with_variant(Integer(), "sqlite")

decision_log = Table(
    "decision_log",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("decision_id", String(64), nullable=False, unique=True),
    Column("replica_id", String(128), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("entry_hash", String(64), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=False),
    Column("policy_set", Text, nullable=False),
    Column("policy_version", Integer, nullable=False),
    Column("tenant", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("caller", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("resource", Text, nullable=False),
    Column("allowed", Boolean, nullable=False),
    Column("rule", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("request_id", Text, nullable=False),
    Column("latency_us", BigInteger, nullable=False),
    # AES-GCM ciphertext of the attributes that are not hashed, and the id of its key
    Column("key_id", String(64), nullable=False),
    Column("attributes", Text, nullable=False),
    # JSON object {"subject.email": "hmac-sha256:..."} of the attributes kept as keyed hashes
    Column("hashed_attributes", Text, nullable=False),
    # A group row (migration 0006): the decisions of one batch request, each item's own part as
    # a JSON array (see store.decision_log.GROUP_ITEM_FIELDS); empty for a single decision.
    Column("items", Text, nullable=False, server_default=""),
    Column("item_count", Integer, nullable=False, server_default="1"),
    UniqueConstraint("replica_id", "seq", name="uq_decision_log_replica_id_seq"),
)
Index("ix_decision_log_decided_at", decision_log.c.decided_at)
Index("ix_decision_log_subject", decision_log.c.subject, decision_log.c.decided_at)
Index("ix_decision_log_actor", decision_log.c.actor, decision_log.c.decided_at)
Index("ix_decision_log_tenant", decision_log.c.tenant, decision_log.c.decided_at)

decision_log_checkpoints = Table(
    "decision_log_checkpoints",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("replica_id", String(128), nullable=False),
    # every row of the replica with seq <= up_to_seq was purged, except rows under legal hold
    Column("up_to_seq", BigInteger, nullable=False),
    Column("last_hash", String(64), nullable=False),
    Column("purged_rows", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
Index("ix_decision_log_checkpoints_replica_id", decision_log_checkpoints.c.replica_id)

admin_audit = Table(
    "admin_audit",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("action", String(32), nullable=False),
    Column("policy_set", Text, nullable=False),
    Column("version", Integer, nullable=True),
    Column("actor", Text, nullable=False),
    Column("detail", Text, nullable=False),
)

security_events = Table(
    "security_events",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("tenant", Text, nullable=False),
    Column("kind", String(64), nullable=False),
    Column("principal", Text, nullable=False),
    Column("detail", Text, nullable=False),
)
Index("ix_security_events_created_at", security_events.c.created_at)

quarantines = Table(
    "quarantines",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("tenant", Text, nullable=False),
    Column("principal", Text, nullable=False),
    Column("until", DateTime(timezone=True), nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("released_at", DateTime(timezone=True), nullable=True),
    Column("released_by", Text, nullable=True),
)
Index("ix_quarantines_tenant", quarantines.c.tenant, quarantines.c.principal)

tenant_settings = Table(
    "tenant_settings",
    metadata,
    Column("tenant", String(255), primary_key=True),
    Column("legal_hold", Boolean, nullable=False, server_default="0"),
)


def utc(moment: datetime) -> datetime:
    """`moment` in UTC; SQLite returns naive datetimes and we always store UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# --- quarantines ---------------------------------------------------------------------------


def quarantine(engine: Engine, tenant: str, principal: str, until: datetime, reason: str) -> None:
    """Quarantine `principal` in `tenant` until `until`; an active quarantine is extended instead."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        active = conn.execute(
            select(quarantines.c.id, quarantines.c.until).where(
                quarantines.c.tenant == tenant,
                quarantines.c.principal == principal,
                quarantines.c.released_at.is_(None),
                quarantines.c.until > now,
            )
        ).first()
        if active is not None:
            if utc(active.until) < utc(until):
                conn.execute(
                    update(quarantines)
                    .where(quarantines.c.id == active.id)
                    .values(until=utc(until), reason=reason)
                )
            return
        conn.execute(
            insert(quarantines).values(
                tenant=tenant, principal=principal, until=utc(until), reason=reason, created_at=now
            )
        )


def active_quarantines(engine: Engine, now: datetime | None = None) -> set[tuple[str, str]]:
    """(tenant, principal) of every quarantine not released and not expired at `now`."""
    moment = utc(now or datetime.now(UTC))
    with engine.connect() as conn:
        rows = conn.execute(
            select(quarantines.c.tenant, quarantines.c.principal).where(
                quarantines.c.released_at.is_(None), quarantines.c.until > moment
            )
        )
        return {(row.tenant, row.principal) for row in rows}


def release(engine: Engine, tenant: str, principal: str, by: str, reason: str = "") -> bool:
    """End the active quarantine(s) of `principal`; False when there was none.

    The release and its admin audit row commit together.
    """
    now = datetime.now(UTC)
    with engine.begin() as conn:
        result = conn.execute(
            update(quarantines)
            .where(
                quarantines.c.tenant == tenant,
                quarantines.c.principal == principal,
                quarantines.c.released_at.is_(None),
                quarantines.c.until > now,
            )
            .values(released_at=now, released_by=by)
        )
        if not result.rowcount:
            return False
        conn.execute(
            insert(admin_audit).values(
                created_at=now,
                action="release",
                policy_set="",
                version=None,
                actor=by,
                detail=json.dumps({"tenant": tenant, "principal": principal, "reason": reason}, sort_keys=True),
            )
        )
        return True


# --- security events -----------------------------------------------------------------------


@dataclass(frozen=True)
class SecurityEvent:
    id: int
    created_at: datetime
    tenant: str
    kind: str
    principal: str
    detail: Mapping[str, Any]


def add_event(
    engine: Engine, *, tenant: str, kind: str, principal: str, detail: Mapping[str, Any]
) -> None:
    """Record one security event (an anomaly signal, a quarantine, a refused request burst)."""
    with engine.begin() as conn:
        conn.execute(
            insert(security_events).values(
                created_at=datetime.now(UTC),
                tenant=tenant,
                kind=kind,
                principal=principal,
                detail=json.dumps(dict(detail), sort_keys=True, default=str),
            )
        )


def list_events(engine: Engine, limit: int = 100) -> list[SecurityEvent]:
    """The latest security events, newest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(security_events).order_by(security_events.c.id.desc()).limit(limit)
        )
        return [
            SecurityEvent(
                id=row.id,
                created_at=utc(row.created_at),
                tenant=row.tenant,
                kind=row.kind,
                principal=row.principal,
                detail=json.loads(row.detail),
            )
            for row in rows
        ]
