"""SQLAlchemy table declarations. The schema itself is created by Alembic migrations only."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = ["activations", "metadata", "policy_sets", "policy_versions"]

metadata = MetaData(
    naming_convention={
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s_%(column_1_name)s",
        "ix": "ix_%(table_name)s_%(column_0_name)s",
    }
)

# BigInteger ids become INTEGER on SQLite so they autoincrement there too.
_Id = BigInteger().with_variant(Integer(), "sqlite")

policy_sets = Table(
    "policy_sets",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("name", String(63), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

policy_versions = Table(
    "policy_versions",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("policy_set_id", _Id, ForeignKey("policy_sets.id"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("model_text", Text, nullable=False),
    Column("policy_text", Text, nullable=False),
    # JSON object {path: text} of the bundle's test files
    Column("tests_json", Text, nullable=False),
    Column("schema_text", Text, nullable=False, server_default=""),
    Column("roles_text", Text, nullable=False, server_default=""),
    Column("rule_count", Integer, nullable=False),
    Column("message", Text, nullable=False),
    Column("author", String(255), nullable=False),
    Column("git_commit", String(64), nullable=True),
    Column("git_dirty", Boolean, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("policy_set_id", "number"),
    UniqueConstraint("policy_set_id", "sha256"),
)

activations = Table(
    "activations",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("policy_set_id", _Id, ForeignKey("policy_sets.id"), nullable=False),
    Column("version_id", _Id, ForeignKey("policy_versions.id"), nullable=False),
    Column("previous_version_id", _Id, ForeignKey("policy_versions.id"), nullable=True),
    Column("actor", String(255), nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
