"""Open a database from a SQLAlchemy URL and keep its schema at the code's revision (Alembic)."""

from __future__ import annotations

import sqlite3

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InterfaceError, OperationalError

from policy_engine.errors import SchemaOutdatedError, StoreError, StoreUnavailableError

__all__ = [
    "Guarded",
    "SchemaState",
    "alembic_config",
    "ensure_schema",
    "open_database",
    "redacted_url",
    "schema_state",
    "upgrade",
]

# The Alembic scripts (migrations/ of the repository) through the package's _migrations link,
# so that an installed wheel has them as well as a checkout.
_MIGRATIONS = Path(__file__).resolve().parents[1] / "_migrations"


# Client-side limits for a connection that must not hang (the decision log's writer): give up
# connecting after a few seconds, and let TCP keepalive and the user timeout tell a dead path
# from an idle one. (A path that is open but forwards nothing is cut by store.deadlines.)
_CLIENT_TIMEOUTS = {
    "connect_timeout": 2,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
}


def redacted_url(url: str) -> str:
    """`url` as it may be shown (logs, errors, hints): its password replaced by ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<unparseable database URL>"


def open_database(url: str, *, client_timeouts: bool = False) -> Engine:
    """A SQLAlchemy engine for `url`; SQLite gets foreign keys enforced and a busy timeout.
    `client_timeouts`: PostgreSQL connections time out connecting and use TCP keepalive."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        # SQLAlchemy's message quotes the whole URL, password included.
        raise StoreError("the database URL does not parse as a SQLAlchemy URL") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            # Let SQLAlchemy's "begin" event below issue BEGIN instead of the driver.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            # Write-ahead log: a commit is one append and one fsync (not a rollback journal's
            # several), and readers (reloads, audit queries) do not wait for the decision log's
            # writer. Persistent in the file; another process switching it first is fine.
            try:
                cursor.execute("PRAGMA journal_mode=WAL")
            except sqlite3.OperationalError:
                pass
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # type: ignore[no-untyped-def]
            # IMMEDIATE takes the write lock up front, so two concurrent pushes queue on the
            # busy timeout instead of failing with "database is locked" halfway through.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if client_timeouts and parsed.get_backend_name() == "postgresql":
        return create_engine(url, pool_pre_ping=True, connect_args=dict(_CLIENT_TIMEOUTS))
    return create_engine(url, pool_pre_ping=True)


def alembic_config(engine: Engine | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    if engine is not None:
        config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return config


@dataclass(frozen=True)
class SchemaState:
    """The database's Alembic revision (None when never migrated) and the code's head."""

    current: str | None
    head: str
    has_tables: bool

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def schema_state(engine: Engine) -> SchemaState:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
        has_tables = bool(inspect(conn).get_table_names())
    return SchemaState(current=current, head=str(head), has_tables=has_tables)


# Any constant: replicas starting together on one PostgreSQL migrate one at a time.
_MIGRATION_LOCK = 0x706F6C696379


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to `revision` (serialized across processes on PostgreSQL)."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str) -> None:
    with engine.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.downgrade(config, revision)


def ensure_schema(engine: Engine, url_for_message: str) -> SchemaState:
    """Migrate an empty database; refuse one whose schema is not the code's, saying what to run."""
    try:
        state = schema_state(engine)
    except OperationalError as exc:
        raise StoreUnavailableError(f"database unavailable: {exc.orig}") from exc
    if state.current is None and not state.has_tables:
        upgrade(engine)
        return schema_state(engine)
    if not state.up_to_date:
        raise SchemaOutdatedError(
            f"database schema is at revision {state.current or 'none'}, this code needs {state.head}: "
            f"run `policy-engine db upgrade --db {url_for_message}`"
        )
    return state


def _unavailable(exc: BaseException) -> bool:
    """A database failure a retry may get past: lost or refused connection, lock or I/O trouble."""
    return isinstance(exc, (OperationalError, InterfaceError)) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )


class Guarded:
    """A connection context that turns a lost or failing database into StoreUnavailableError,
    whether it fails at connect, inside the block or at commit.

    `with Guarded(engine.begin()) as conn:`; other errors pass through as they are.
    """

    def __init__(self, context: Any) -> None:
        self._context = context

    def __enter__(self) -> Connection:
        try:
            return self._context.__enter__()
        except OperationalError as exc:
            raise StoreUnavailableError("database unavailable") from exc

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            suppressed = self._context.__exit__(*exc_info)
        except (OperationalError, InterfaceError) as exc:
            raise StoreUnavailableError("database unavailable") from exc
        error = exc_info[1]
        if not suppressed and error is not None and _unavailable(error):
            raise StoreUnavailableError(f"database unavailable: {type(error).__name__}") from error
        return suppressed
