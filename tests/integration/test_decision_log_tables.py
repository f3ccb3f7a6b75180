"""Migration 0004 and the security tables (quarantines, security events), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy
from sqlalchemy import Engine, inspect

from policy_engine.store import ensure_schema, open_database, upgrade
from policy_engine.store.audit_tables import (
    active_quarantines,
    add_event,
    admin_audit,
    list_events,
    quarantine,
    release,
)
from policy_engine.store.db import downgrade
from policy_engine.store.decision_log import DecisionLogRepository

AUDIT_TABLES = {"decision_log", "decision_log_checkpoints", "admin_audit", "security_events",
                "quarantines", "tenant_settings"}


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = open_database(database_url)
    ensure_schema(engine, database_url)
    yield engine
    engine.dispose()


def test_migration_goes_down_and_up(engine: Engine) -> None:
    """0004 can be downgraded to 0003 (its tables gone) and upgraded again."""
    downgrade(engine, "0003")
    assert not AUDIT_TABLES & set(inspect(engine).get_table_names())
    upgrade(engine)
    assert AUDIT_TABLES <= set(inspect(engine).get_table_names())


def test_admin_audit_rows_are_immutable(engine: Engine) -> None:
    """The database refuses to edit or delete an admin audit row."""
    repository = DecisionLogRepository(engine)
    with engine.begin() as conn:
        repository.record_admin_event(conn, action="rollback", policy_set="default", version=1,
                                      actor="ops", detail={})
    for statement in (sqlalchemy.update(admin_audit).values(actor="someone else"), sqlalchemy.delete(admin_audit)):
        with pytest.raises(sqlalchemy.exc.DBAPIError), engine.begin() as conn:
            conn.execute(statement)


def test_quarantine_until_released_or_expired(engine: Engine) -> None:
    """A quarantine is active until it expires or someone releases it."""
    now = datetime.now(UTC)
    quarantine(engine, "acme", "agent:rogue", now + timedelta(hours=1), "too many denials")
    quarantine(engine, "acme", "user:eve", now + timedelta(minutes=5), "probing")
    quarantine(engine, "acme", "user:eve", now + timedelta(hours=2), "probing again")  # extends, no duplicate
    assert active_quarantines(engine) == {("acme", "agent:rogue"), ("acme", "user:eve")}
    assert active_quarantines(engine, now + timedelta(minutes=90)) == {("acme", "user:eve")}
    assert release(engine, "acme", "agent:rogue", by="ops@acme")
    assert not release(engine, "acme", "agent:rogue", by="ops@acme")
    assert active_quarantines(engine) == {("acme", "user:eve")}


def test_security_events_newest_first(engine: Engine) -> None:
    """Security events are listed newest first with their detail."""
    add_event(engine, tenant="acme", kind="denial_burst", principal="agent:rogue", detail={"denials": 50})
    add_event(engine, tenant="acme", kind="quarantined", principal="agent:rogue", detail={"minutes": 60})
    events = list_events(engine, limit=10)
    assert [e.kind for e in events] == ["quarantined", "denial_burst"]
    assert events[1].detail == {"denials": 50} and events[0].created_at.tzinfo is not None
