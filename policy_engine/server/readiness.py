"""Health that tells the truth: the authorization service is SERVING only while a policy version
is loaded and its decisions can be logged.

A load balancer reads grpc.health.v1. A replica whose decision log cannot keep entries (no
writer process can be started, or neither the database nor the spill file takes them) either
answers decisions nobody will find in the log, or, under `on_loss: fail_closed`, refuses them
all; either way it must not be sent traffic, so it reports NOT_SERVING for the authorization
service and the server as a whole ("") until the log recovers. The admin service stays SERVING
once started, so operators can still look.
"""

from __future__ import annotations

import asyncio
import logging

from grpc_health.v1 import health, health_pb2

from policy_engine.audit import AuditSink

__all__ = ["Readiness"]

log = logging.getLogger(__name__)

_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Readiness:
    """Sets the health statuses from two facts: policies loaded, decision log available."""

    def __init__(self, servicer: health.aio.HealthServicer, sink: AuditSink, *, decisions: str, admin: str) -> None:
        self._servicer = servicer
        self._sink = sink
        self._decisions = decisions
        self._admin = admin
        self._loaded = False
        self._logging = True
        self._started = False  # the log has been available once
        self._shown: tuple[bool, bool] | None = None

    async def policies_loaded(self) -> None:
        self._loaded = True
        await self._show()

    async def watch(self, interval: float = 0.2) -> None:
        """Follow the decision log's availability (runs until cancelled)."""
        while True:
            logging_now = self._sink.available
            if logging_now != self._logging and self._started:  # the writer's start is no news
                if logging_now:
                    log.warning("the decision log keeps entries again: the authorization service is SERVING")
                else:
                    log.error("the decision log cannot keep entries: reporting NOT_SERVING for the "
                              "authorization service until it can")
            self._logging = logging_now
            self._started = self._started or logging_now
            await self._show()
            await asyncio.sleep(interval)

    async def _show(self) -> None:
        state = (self._loaded, self._logging)
        if state == self._shown:
            return
        self._shown = state
        deciding = _SERVING if self._loaded and self._logging else _NOT_SERVING
        await self._servicer.set("", deciding)
        await self._servicer.set(self._decisions, deciding)
        await self._servicer.set(self._admin, _SERVING if self._loaded else _NOT_SERVING)
