"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from policy_engine.store import ensure_schema, open_database


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on `database_url` (SQLite, then PostgreSQL) with the schema migrated to head."""
    engine = open_database(database_url)
    ensure_schema(engine, database_url)
    yield engine
    engine.dispose()
