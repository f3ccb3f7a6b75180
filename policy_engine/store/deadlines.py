"""Client-side deadlines on database work: a database that hangs fails like one that is down.

A server-side statement timeout is enforced by the server, which never sees the statement when
the path to it hangs (a partition, a stuck proxy: connections stay open and nothing comes back);
the client then waits forever. `Deadline.limit(seconds)` bounds one operation from the client:
when it outlives its time, the sockets of the engine's PostgreSQL connections are shut down, so
the blocked call fails at once with the driver's connection error (and SQLAlchemy discards the
connection). Every connection of the engine is cut, not only the one in use, because the one
that hangs may be a pooled connection being pinged before it is handed out; an idle connection
cut by mistake is replaced by the pool's pre-ping (and, until the overrun operation has failed,
no new connection is opened for it: the pre-ping's reconnect would wait out a connect timeout
first). So the engine must be the operation's own
(the decision log's writer has one). SQLite has no socket: its hang is a lock held by another
writer, which `sqlite_busy_timeout` bounds instead.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import Connection

__all__ = ["Deadline", "DeadlinePassedError", "sqlite_busy_timeout"]

log = logging.getLogger(__name__)


class DeadlinePassedError(ConnectionError):
    """A database operation outlived its deadline (raised instead of opening a connection)."""


class Deadline:
    """Cuts the connections of `engine` when an operation run under `limit` overruns."""

    def __init__(self, engine: Engine) -> None:
        self._connections: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._overrun = 0  # operations past their deadline and not yet ended
        self._sqlite = engine.dialect.name == "sqlite"  # no socket: see sqlite_busy_timeout
        if engine.dialect.name == "postgresql":
            event.listen(engine, "connect", self._opened)
            event.listen(engine, "do_connect", self._connecting)

    def _connecting(self, *_args: Any) -> None:
        if self._overrun:
            raise DeadlinePassedError("the database did not answer before the deadline")

    def _opened(self, dbapi_connection: Any, _record: Any) -> None:
        with self._lock:
            self._connections.add(dbapi_connection)

    @contextlib.contextmanager
    def limit(self, seconds: float | None) -> Iterator[None]:
        """Run the block; if it is still running after `seconds`, cut the engine's connections
        (the block then fails with the driver's error). None: no limit."""
        if seconds is None or self._sqlite:
            yield
            return
        running = [True, False]  # running, overrun

        def expire() -> None:
            with self._lock:
                if not running[0]:
                    return
                running[1] = True
                self._overrun += 1
                connections = list(self._connections)
            log.warning("database did not answer within %.1fs: cutting %d connection(s)", seconds,
                        len(connections))
            for connection in connections:
                _shut_down(connection)

        timer = _WATCHDOG.arm(time.monotonic() + seconds, expire)
        try:
            yield
        finally:
            with self._lock:
                running[0] = False
                if running[1]:
                    self._overrun -= 1
            _WATCHDOG.disarm(timer)


def _shut_down(connection: Any) -> None:
    try:
        fd = connection.fileno()
    except Exception:  # noqa: BLE001 - closed already
        return
    try:
        # a duplicate of the descriptor: shutting it down shuts the one socket both name
        with socket.socket(fileno=os.dup(fd)) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


@contextlib.contextmanager
def sqlite_busy_timeout(conn: Connection, seconds: float | None) -> Iterator[None]:
    """On SQLite, wait at most `seconds` for another writer's lock during the block (never
    longer than the connection's own busy timeout); elsewhere, nothing."""
    if seconds is None or conn.dialect.name != "sqlite":
        yield
        return
    raw = conn.connection.driver_connection
    assert raw is not None
    before = int(raw.execute("PRAGMA busy_timeout").fetchone()[0])
    raw.execute(f"PRAGMA busy_timeout = {min(before, int(seconds * 1000))}")
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            raw.execute(f"PRAGMA busy_timeout = {before}")


class _Watchdog:
    """One thread for every deadline of the process: fires each callback at its time unless
    disarmed first (a thread per operation would cost the writer more than its inserts)."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._timers: dict[int, tuple[float, Any]] = {}
        self._next = 0
        self._thread: threading.Thread | None = None

    def arm(self, when: float, callback: Any) -> int:
        with self._lock:
            self._next += 1
            self._timers[self._next] = (when, callback)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="database-deadlines", daemon=True)
                self._thread.start()
            self._lock.notify()
            return self._next

    def disarm(self, timer: int) -> None:
        with self._lock:
            self._timers.pop(timer, None)

    def _run(self) -> None:
        while True:
            with self._lock:
                while True:
                    now = time.monotonic()
                    due = [key for key, (when, _) in self._timers.items() if when <= now]
                    if due:
                        callbacks = [self._timers.pop(key)[1] for key in due]
                        break
                    soonest = min((when for when, _ in self._timers.values()), default=None)
                    self._lock.wait(None if soonest is None else soonest - now)
            for callback in callbacks:
                try:
                    callback()
                except Exception:  # noqa: BLE001 - a deadline must never kill the watchdog
                    log.exception("database deadline callback failed")


_WATCHDOG = _Watchdog()
