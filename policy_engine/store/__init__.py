"""Persistence: SQLAlchemy tables, Alembic-managed schema, repositories. Knows rows, never proto."""

from policy_engine.store.db import ensure_schema, open_database, schema_state, upgrade
from policy_engine.store.repository import (
    ActivationRecord,
    NewVersion,
    PolicyRepository,
    StaleActivationError,
    VersionRecord,
)

__all__ = [
    "ActivationRecord",
    "NewVersion",
    "PolicyRepository",
    "StaleActivationError",
    "VersionRecord",
    "ensure_schema",
    "open_database",
    "schema_state",
    "upgrade",
]
