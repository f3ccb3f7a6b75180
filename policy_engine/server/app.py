"""Assemble and run the gRPC server: storage, policies, servicers, health, reflection, drain.

No decisions here: this module only wires the parts together.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from policy_engine import limits
from policy_engine.bundle import load_bundles
from policy_engine.config import Settings, is_loopback, split_host_port
from policy_engine.server.interceptors import ErrorStatusInterceptor
from policy_engine.server.servicers import AuthorizationServicer
from policy_engine.service import DecisionService, PolicyRegistry, Reloader, import_new_bundles
from policy_engine.store import PolicyRepository, ensure_schema, open_database
from policy_engine.v1 import authorization_pb2, authorization_pb2_grpc

__all__ = ["InsecureBindError", "RunningServer", "start_server"]

log = logging.getLogger(__name__)

AUTHORIZATION_SERVICE = authorization_pb2.DESCRIPTOR.services_by_name["AuthorizationService"].full_name


class InsecureBindError(Exception):
    """Refusing to listen beyond loopback without authentication."""


@dataclass
class RunningServer:
    """A started server: its bound port, and how to stop it gracefully."""

    server: grpc.aio.Server
    port: int
    registry: PolicyRegistry
    health: health.aio.HealthServicer
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def stop(self, grace: float = 5.0) -> None:
        """Report NOT_SERVING, let in-flight calls finish within `grace`, then stop."""
        await self.health.enter_graceful_shutdown()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.server.stop(grace)

    async def wait(self) -> None:
        await self.server.wait_for_termination()


async def start_server(settings: Settings) -> RunningServer:
    """Open the store, import and load policies, bind the port, start serving."""
    host, port = split_host_port(settings.listen)
    if not is_loopback(host):
        if not settings.insecure:
            raise InsecureBindError(
                f"refusing to listen on {settings.listen}: authentication is not configured, so "
                "only a loopback address is allowed (pass --insecure to override, at your risk)"
            )
        log.warning(
            "INSECURE: listening on %s without authentication; anyone who can reach this port "
            "can ask for and learn every decision",
            settings.listen,
        )

    database = open_database(settings.db_url)
    await asyncio.to_thread(ensure_schema, database, settings.db_url)
    repository = PolicyRepository(database)
    if settings.policies is not None and settings.policies.is_dir():
        bundles = await asyncio.to_thread(load_bundles, settings.policies)
        for record in await asyncio.to_thread(
            import_new_bundles, repository, bundles, f"{getpass.getuser()} (policy-engine serve)"
        ):
            log.info("imported policy set %s as version %d", record.policy_set, record.number)

    registry = PolicyRegistry()
    reloader = Reloader(repository, registry, interval=settings.reload_interval)
    await reloader.sync()
    if not registry.snapshot():
        log.warning("no policy set is active: every Check will fail until one is activated")

    server = grpc.aio.server(
        interceptors=[ErrorStatusInterceptor()],
        options=[("grpc.max_receive_message_length", limits.MAX_REQUEST_BYTES)],
    )
    authorization_pb2_grpc.add_AuthorizationServiceServicer_to_server(
        AuthorizationServicer(DecisionService(registry)), server
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (AUTHORIZATION_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    bound = server.add_insecure_port(settings.listen)
    if bound == 0:
        raise OSError(f"cannot listen on {settings.listen}")
    await server.start()

    status = (
        health_pb2.HealthCheckResponse.SERVING
        if registry.snapshot()
        else health_pb2.HealthCheckResponse.NOT_SERVING
    )
    for service in ("", AUTHORIZATION_SERVICE):
        await health_servicer.set(service, status)
    running = RunningServer(server, bound, registry, health_servicer)
    running._tasks.append(asyncio.create_task(_serve_when_loaded(reloader, registry, health_servicer)))
    log.info("listening on %s:%d", host, bound)
    return running


async def _serve_when_loaded(
    reloader: Reloader, registry: PolicyRegistry, health_servicer: health.aio.HealthServicer
) -> None:
    """Run the reloader; turn health to SERVING once a first version is loaded."""
    if not registry.snapshot():
        while not registry.snapshot():
            with contextlib.suppress(Exception):
                await reloader.sync()
            await asyncio.sleep(1.0)
        for service in ("", AUTHORIZATION_SERVICE):
            await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    await reloader.run()
