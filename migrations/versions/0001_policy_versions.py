"""Policy sets, immutable versions and activation events.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "policy_sets",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_policy_sets"),
        sa.UniqueConstraint("name", name="uq_policy_sets_name"),
    )
    op.create_table(
        "policy_versions",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("policy_set_id", _Id, nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("model_text", sa.Text, nullable=False),
        sa.Column("policy_text", sa.Text, nullable=False),
        sa.Column("tests_json", sa.Text, nullable=False),
        sa.Column("rule_count", sa.Integer, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("author", sa.String(255), nullable=False),
        sa.Column("git_commit", sa.String(64), nullable=True),
        sa.Column("git_dirty", sa.Boolean, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_policy_versions"),
        sa.ForeignKeyConstraint(
            ["policy_set_id"], ["policy_sets.id"], name="fk_policy_versions_policy_set_id_policy_sets"
        ),
        sa.UniqueConstraint("policy_set_id", "number", name="uq_policy_versions_policy_set_id_number"),
        sa.UniqueConstraint("policy_set_id", "sha256", name="uq_policy_versions_policy_set_id_sha256"),
        sa.CheckConstraint("number > 0", name="ck_policy_versions_number_positive"),
    )
    op.create_table(
        "activations",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("policy_set_id", _Id, nullable=False),
        sa.Column("version_id", _Id, nullable=False),
        sa.Column("previous_version_id", _Id, nullable=True),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_activations"),
        sa.ForeignKeyConstraint(
            ["policy_set_id"], ["policy_sets.id"], name="fk_activations_policy_set_id_policy_sets"
        ),
        sa.ForeignKeyConstraint(
            ["version_id"], ["policy_versions.id"], name="fk_activations_version_id_policy_versions"
        ),
        sa.ForeignKeyConstraint(
            ["previous_version_id"],
            ["policy_versions.id"],
            name="fk_activations_previous_version_id_policy_versions",
        ),
    )
    op.create_index("ix_activations_policy_set_id", "activations", ["policy_set_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_activations_policy_set_id", table_name="activations")
    op.drop_table("activations")
    op.drop_table("policy_versions")
    op.drop_table("policy_sets")
