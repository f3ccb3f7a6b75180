"""Decision log (append-only, hash-chained), purge checkpoints, admin audit, security signals.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# (table, events refused): decisions may be purged (DELETE) but never edited.
_GUARDED = (
    ("decision_log", ("UPDATE",)),
    ("decision_log_checkpoints", ("UPDATE", "DELETE")),
    ("admin_audit", ("UPDATE", "DELETE")),
)


def upgrade() -> None:
    op.create_table(
        "decision_log",
        sa.Column("id", _Id, autoincrement=True),
        sa.Column("decision_id", sa.String(64), nullable=False),
        sa.Column("replica_id", sa.String(128), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("policy_set", sa.Text, nullable=False),
        sa.Column("policy_version", sa.Integer, nullable=False),
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("caller", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("resource", sa.Text, nullable=False),
        sa.Column("allowed", sa.Boolean, nullable=False),
        sa.Column("rule", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("request_id", sa.Text, nullable=False),
        sa.Column("latency_us", sa.BigInteger, nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("attributes", sa.Text, nullable=False),
        sa.Column("hashed_attributes", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_decision_log"),
        sa.UniqueConstraint("decision_id", name="uq_decision_log_decision_id"),
        sa.UniqueConstraint("replica_id", "seq", name="uq_decision_log_replica_id_seq"),
        sa.CheckConstraint("seq > 0", name="ck_decision_log_seq_positive"),
    )
    op.create_index("ix_decision_log_decided_at", "decision_log", ["decided_at"])
    op.create_index("ix_decision_log_subject", "decision_log", ["subject", "decided_at"])
    op.create_index("ix_decision_log_actor", "decision_log", ["actor", "decided_at"])
    op.create_index("ix_decision_log_tenant", "decision_log", ["tenant", "decided_at"])
    op.create_table(
        "decision_log_checkpoints",
        sa.Column("id", _Id, autoincrement=True),
        sa.Column("replica_id", sa.String(128), nullable=False),
        sa.Column("up_to_seq", sa.BigInteger, nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.Column("purged_rows", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_decision_log_checkpoints"),
    )
    op.create_index(
        "ix_decision_log_checkpoints_replica_id", "decision_log_checkpoints", ["replica_id"]
    )
    op.create_table(
        "admin_audit",
        sa.Column("id", _Id, autoincrement=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("policy_set", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_admin_audit"),
    )
    op.create_table(
        "security_events",
        sa.Column("id", _Id, autoincrement=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("principal", sa.Text, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_security_events"),
    )
    op.create_index("ix_security_events_created_at", "security_events", ["created_at"])
    op.create_table(
        "quarantines",
        sa.Column("id", _Id, autoincrement=True),
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("principal", sa.Text, nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("released_by", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_quarantines"),
    )
    op.create_index("ix_quarantines_tenant", "quarantines", ["tenant", "principal"])
    op.create_table(
        "tenant_settings",
        sa.Column("tenant", sa.String(255), nullable=False),
        sa.Column("legal_hold", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("tenant", name="pk_tenant_settings"),
    )
    _create_guards()


def _create_guards() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # policy_engine_refuse_change() comes from revision 0002.
        for table, events in _GUARDED:
            op.execute(
                f"CREATE TRIGGER {table}_immutable BEFORE {' OR '.join(events)} ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION policy_engine_refuse_change()"
            )
        return
    for table, events in _GUARDED:
        for event in events:
            op.execute(
                f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} rows are immutable'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, _events in _GUARDED:
            op.execute(f"DROP TRIGGER {table}_immutable ON {table}")
    else:
        for table, events in _GUARDED:
            for event in events:
                op.execute(f"DROP TRIGGER {table}_no_{event.lower()}")
    op.drop_table("tenant_settings")
    op.drop_index("ix_quarantines_tenant", table_name="quarantines")
    op.drop_table("quarantines")
    op.drop_index("ix_security_events_created_at", table_name="security_events")
    op.drop_table("security_events")
    op.drop_table("admin_audit")
    op.drop_index("ix_decision_log_checkpoints_replica_id", table_name="decision_log_checkpoints")
    op.drop_table("decision_log_checkpoints")
    for index in ("tenant", "actor", "subject", "decided_at"):
        op.drop_index(f"ix_decision_log_{index}", table_name="decision_log")
    op.drop_table("decision_log")
