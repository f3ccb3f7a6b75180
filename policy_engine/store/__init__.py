"""Persistence: SQLAlchemy tables, Alembic-managed schema, repositories. Knows rows, never proto."""

from policy_engine.store.db import ensure_schema, open_database, schema_state, upgrade
from policy_engine.store.repository import (
    ACTIVATION_CHANNEL,
    ActivationRecord,
    ActivationRequest,
    NewVersion,
    NothingToRollBackError,
    PolicyRepository,
    StaleActivationError,
    VersionRecord,
)

__all__ = [
    "ACTIVATION_CHANNEL",
    "ActivationRecord",
    "ActivationRequest",
    "NothingToRollBackError",
    "NewVersion",
    "PolicyRepository",
    "StaleActivationError",
    "VersionRecord",
    "ensure_schema",
    "open_database",
    "schema_state",
    "upgrade",
]
