"""Wake-ups on activation: PostgreSQL LISTEN/NOTIFY, so replicas reload within a second.

Other databases have no notifications; the reloader's polling covers them
(and covers PostgreSQL too, whenever the listening connection is lost).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy import Engine

from policy_engine.store.repository import ACTIVATION_CHANNEL

__all__ = ["ActivationListener"]

log = logging.getLogger(__name__)


class ActivationListener:
    """A daemon thread that calls `on_activation()` whenever an activation is committed."""

    def __init__(self, engine: Engine, on_activation: Callable[[], None]) -> None:
        self._engine = engine
        self._on_activation = on_activation
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def supported(self) -> bool:
        return self._engine.dialect.name == "postgresql"

    def start(self) -> None:
        if not self.supported:
            return
        self._thread = threading.Thread(target=self._run, name="activation-listener", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        import psycopg  # only needed, and only installed, for PostgreSQL

        url = self._engine.url.set(drivername="postgresql")
        dsn = url.render_as_string(hide_password=False)
        while not self._stop.is_set():
            try:
                with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {ACTIVATION_CHANNEL}")
                    self._on_activation()  # catch up on anything missed while not listening
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=0.5, stop_after=1):
                            self._on_activation()
            except psycopg.Error as exc:
                log.warning("activation listener lost its connection (%s); polling meanwhile", exc)
                self._stop.wait(1.0)
