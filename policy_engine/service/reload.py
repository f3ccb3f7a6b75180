"""Keep the registry on the active versions in the database, compiling off the request path."""

from __future__ import annotations

import asyncio
import gc
import logging

from policy_engine.errors import PolicyEngineError, StoreUnavailableError
from policy_engine.metrics import METRICS
from policy_engine.service.policies import PolicyRegistry, load_version
from policy_engine.store import PolicyRepository

__all__ = ["Reloader"]

log = logging.getLogger(__name__)


def _settle_heap() -> None:
    """Move the loaded policies out of the garbage collector's sight.

    A compiled set of 100k rules is millions of objects; every full collection would walk them
    all (a pause of ~100 ms in the middle of serving). Frozen, they are skipped. Unfreezing and
    collecting first lets the previous versions' cycles be freed: one such pause per reload.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class Reloader:
    """Polls the activation log and installs every newly activated version.

    If the database is unreachable, the versions already loaded keep deciding;
    the next successful poll catches up.
    """

    def __init__(
        self, repository: PolicyRepository, registry: PolicyRegistry, interval: float = 1.0
    ) -> None:
        self._repository = repository
        self._registry = registry
        self._interval = interval
        self._seen_activation = -1
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Ask for a sync now (from the event loop's thread)."""
        self._wake.set()

    async def sync(self) -> list[str]:
        """Load every active version that differs from the loaded one; returns the sets loaded."""
        marker = await asyncio.to_thread(self._repository.latest_activation_id)
        if marker == self._seen_activation:
            return []
        active = await asyncio.to_thread(self._repository.active_versions)
        loaded_now = []
        for name, record in active.items():
            current = self._registry.snapshot().get(name)
            if current is not None and current.version == record.number:
                continue
            try:
                policy = await asyncio.to_thread(load_version, record)
            except PolicyEngineError as exc:
                METRICS.reloads.labels(result="failure").inc()
                log.error("cannot load policy set %s version %d: %s", name, record.number, exc)
                continue
            self._registry.install(policy)
            METRICS.reloads.labels(result="success").inc()
            METRICS.active_version.labels(policy_set=name).set(record.number)
            loaded_now.append(name)
            log.info(
                "loaded policy set %s version %d (%d rules, sha256 %s)",
                name,
                record.number,
                record.rule_count,
                record.sha256[:12],
            )
        if loaded_now:
            _settle_heap()
        self._seen_activation = marker
        return loaded_now

    async def run(self) -> None:
        """Sync on every wake-up, and at least every `interval` seconds, until cancelled."""
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self._interval)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.sync()
            except StoreUnavailableError:
                log.warning("database unavailable; still deciding on the loaded versions")
            except Exception:
                log.exception("reload failed; still deciding on the loaded versions")
