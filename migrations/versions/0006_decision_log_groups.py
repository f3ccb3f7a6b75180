"""Decision log groups: one row for the decisions of one BatchCheck or FilterAllowed request.

A row per decision cost the writer about 60 us each (sealing, hashing, inserting), which capped
an audited server at about 11k decisions/s and dropped the rest under batch load. A group row
holds what the items share once (time, version, tenant, subject, actor, caller, the encrypted
attributes) and each item's own part in `items`, a JSON array; `item_count` is its length.
Single decisions keep `items` empty and `item_count` 1, and their hashes do not change.

Downgrading refuses while group rows are stored: they cannot be split without re-chaining, and
dropping them would lose acknowledged decisions.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("decision_log", sa.Column("items", sa.Text, nullable=False, server_default=""))
    op.add_column("decision_log", sa.Column("item_count", sa.Integer, nullable=False, server_default="1"))


def downgrade() -> None:
    groups = op.get_bind().scalar(sa.text("SELECT count(*) FROM decision_log WHERE items <> ''"))
    if groups:
        raise RuntimeError(
            f"the decision log holds {groups} group rows (batch decisions); downgrading below "
            "0006 would lose them. Purge them first (retention) or stay on 0006."
        )
    op.execute("ALTER TABLE decision_log DROP COLUMN item_count")
    op.execute("ALTER TABLE decision_log DROP COLUMN items")
