"""Retention: the server purges decisions older than a number of days, in small batches.

Tenants under legal hold (`DecisionLogRepository.set_legal_hold`) keep every decision. Each
batch is its own short transaction with a purge checkpoint, so purging never holds long locks
and `verify` can tell a purge from a deletion.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

from policy_engine.errors import PolicyEngineError
from policy_engine.store.decision_log import DecisionLogRepository

__all__ = ["Retention"]

log = logging.getLogger(__name__)


class Retention:
    """Purges decisions older than `days`, every `interval` seconds, on a daemon thread."""

    def __init__(
        self,
        repository: DecisionLogRepository,
        days: int,
        *,
        interval: float = 3600.0,
        batch_size: int = 1000,
        max_batches: int = 100,
    ) -> None:
        if days < 1:
            raise ValueError("retention must keep at least one day of decisions")
        self._repository = repository
        self._days = days
        self._interval = interval
        self._batch_size = batch_size
        self._max_batches = max_batches
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self, now: datetime | None = None) -> int:
        """Purge one round (at most `max_batches` batches); returns the rows deleted."""
        cutoff = (now or datetime.now(UTC)) - timedelta(days=self._days)
        return self._repository.purge(
            older_than=cutoff, batch_size=self._batch_size, max_batches=self._max_batches
        )

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="decision-log-retention", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                purged = self.run_once()
            except (PolicyEngineError, OSError) as exc:
                log.warning("decision log retention skipped a round: %s", exc)
                continue
            except Exception:  # noqa: BLE001 - a database error: try again next round
                log.exception("decision log retention failed; retrying next round")
                continue
            if purged:
                log.info("decision log retention purged %d decisions", purged)
