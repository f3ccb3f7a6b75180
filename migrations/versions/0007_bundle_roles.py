"""A version may carry its role declarations (roles.yaml: pattern roles, link conditions).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN (no table rebuild), so SQLite keeps the immutability triggers.
    op.add_column(
        "policy_versions",
        sa.Column("roles_text", sa.Text, nullable=False, server_default=""),
    )


def downgrade() -> None:
    # Refuse rather than drop acknowledged content: a version that declares roles would decide
    # differently without them, under the same sha256.
    declared = op.get_bind().scalar(
        sa.text("SELECT COUNT(*) FROM policy_versions WHERE roles_text <> ''")
    )
    if declared:
        raise RuntimeError(
            f"{declared} stored version(s) declare roles.yaml; "
            "downgrading would change what they decide"
        )
    with op.batch_alter_table("policy_versions", recreate="never") as batch:
        batch.drop_column("roles_text")
