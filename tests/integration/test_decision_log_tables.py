"""Migration 0004 and the security tables (quarantines, security events), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import Engine, inspect

from policy_engine.store import upgrade
from policy_engine.store.audit_tables import (
    active_quarantines,
    add_event,
    admin_audit,
    decision_log,
    list_events,
    quarantine,
    release,
)
from policy_engine.store.db import downgrade, schema_state
from policy_engine.store.decision_log import DecisionLogRepository

AUDIT_TABLES = {"decision_log", "decision_log_checkpoints", "admin_audit", "security_events",
                "quarantines", "tenant_settings"}


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


class TestChainFormatMigration:
    def _fill(self, engine: Engine, tmp_path: Path) -> DecisionLogRepository:
        from tests.integration.test_decision_log import decision, open_log

        repository = DecisionLogRepository(engine)
        repository.set_legal_hold("held", True)
        old = datetime.now(UTC) - timedelta(days=40)
        sink = open_log(engine, tmp_path / "spill")
        sink.record_many([decision(n, tenant="held" if n in (3, 4) else "acme", decided_at=old) for n in range(10)])
        sink.record_many([decision(n) for n in range(10, 25)])
        sink.close()
        assert repository.purge(older_than=old + timedelta(days=1)) == 8
        return repository

    @staticmethod
    def _hashes(engine: Engine) -> dict[str, tuple[str, str]]:
        with engine.connect() as conn:
            rows = conn.execute(sqlalchemy.select(decision_log.c.decision_id, decision_log.c.prev_hash,
                                                  decision_log.c.entry_hash))
            return {row.decision_id: (row.prev_hash, row.entry_hash) for row in rows}

    def test_rows_are_rechained_down_and_up(self, engine: Engine, tmp_path: Path) -> None:
        """0005 re-chains stored rows (held rows and purge checkpoints included) to the old format and back."""
        repository = self._fill(engine, tmp_path)
        before = self._hashes(engine)
        assert repository.verify().ok
        downgrade(engine, "0004")
        at_0004 = self._hashes(engine)
        assert all(at_0004[d][1] != before[d][1] for d in before)
        upgrade(engine)
        assert self._hashes(engine) == before
        report = repository.verify()
        assert report.ok and report.rows_checked == 17, report.lines()

    def test_an_edited_row_stops_the_migration(self, engine: Engine, tmp_path: Path) -> None:
        """A row that does not match its hash is never given a fresh one: the downgrade stops, nothing changes."""
        self._fill(engine, tmp_path)
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("DROP TRIGGER decision_log_immutable ON decision_log")
                conn.exec_driver_sql("UPDATE decision_log SET reason = 'edited' WHERE seq = 20")
                conn.exec_driver_sql("CREATE TRIGGER decision_log_immutable BEFORE UPDATE ON decision_log "
                                     "FOR EACH ROW EXECUTE FUNCTION policy_engine_refuse_change()")
            else:
                conn.exec_driver_sql("DROP TRIGGER decision_log_no_update")
                conn.exec_driver_sql("UPDATE decision_log SET reason = 'edited' WHERE seq = 20")
                conn.exec_driver_sql("CREATE TRIGGER decision_log_no_update BEFORE UPDATE ON decision_log "
                                     "BEGIN SELECT RAISE(ABORT, 'decision_log rows are immutable'); END")
        before = self._hashes(engine)
        with pytest.raises(RuntimeError, match="seq 20 does not match"):
            downgrade(engine, "0004")
        assert self._hashes(engine) == before
        state = schema_state(engine)
        assert state.current == state.head  # the whole downgrade rolled back
