"""A version may carry its attribute schema (schema.yaml).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN (no table rebuild), so SQLite keeps the immutability triggers.
    op.add_column(
        "policy_versions",
        sa.Column("schema_text", sa.Text, nullable=False, server_default=""),
    )


def downgrade() -> None:
    with op.batch_alter_table("policy_versions", recreate="never") as batch:
        batch.drop_column("schema_text")
