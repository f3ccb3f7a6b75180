"""Assemble and run the gRPC server: storage, policies, servicers, health, reflection, drain.

No decisions here: this module only wires the parts together.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import getpass
import logging
import os
import socket
from dataclasses import dataclass, field

import grpc
from sqlalchemy import Engine
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from policy_engine.auth.callers import default_admin_token_file, load_or_create_admin_token
from policy_engine.bundle import load_bundles
from policy_engine.config import Settings, is_loopback, split_host_port
from policy_engine.errors import SchemaOutdatedError, StoreUnavailableError
from policy_engine.auth.authorizer import RpcAuthorizer
from policy_engine.server.admin_servicer import AdminServicer
from policy_engine.server.connections import channel_options
from policy_engine.server.health import HealthServicer
from policy_engine.server.interceptors import EdgeInterceptor
from policy_engine.audit import AuditSink, Retention
from policy_engine.server.observability import (
    build_audit,
    build_threats,
    observe_gauges,
    start_metrics,
)
from policy_engine.server.readiness import Readiness
from policy_engine.server.security import build_guard, build_subject_resolver, server_credentials
from policy_engine.service.audit_log import AuditService
from policy_engine.service.threats import ThreatMonitor
from policy_engine.server.servicers import AuthorizationServicer
from policy_engine.service import DecisionService, PolicyRegistry, Reloader, VersionService
from policy_engine.store import PolicyRepository, ensure_schema, open_database
from policy_engine.store.db import redacted_url
from policy_engine.store.notifications import ActivationListener
from policy_engine.v1 import admin_pb2, admin_pb2_grpc, authorization_pb2, authorization_pb2_grpc

__all__ = ["AddressInUseError", "InsecureBindError", "RunningServer", "start_server"]

log = logging.getLogger(__name__)

SERVED = (
    authorization_pb2.DESCRIPTOR.services_by_name["AuthorizationService"].full_name,
    admin_pb2.DESCRIPTOR.services_by_name["PolicyAdminService"].full_name,
)


class InsecureBindError(Exception):
    """Refusing to listen beyond loopback without authentication."""


class AddressInUseError(OSError):
    """The listen address is taken (by another server, or anything else)."""


class _UnregisteredMethods:
    """Stands for the server when adding a service whose methods should not be registered
    methods: its generated `add_*_to_server` then adds only the generic handler, which finds
    a method by name when it is called.

    grpc.aio keeps a pending request per registered method and, for every RPC it accepts,
    waits on all of them at once: each registered method costs every RPC a few thousand
    instructions. The admin, health and reflection services (about twenty methods, rarely
    called) would make every Check pay for them.
    """

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: tuple[grpc.GenericRpcHandler, ...]) -> None:
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        """Ignored: the generic handler added with them serves the same methods."""


@dataclass
class RunningServer:
    """A started server: its bound port, and how to stop it gracefully."""

    server: grpc.aio.Server
    port: int
    registry: PolicyRegistry
    health: HealthServicer
    listener: ActivationListener
    sink: AuditSink
    threats: ThreatMonitor
    retention: Retention | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def stop(self, grace: float = 5.0) -> None:
        """Report NOT_SERVING, let in-flight calls finish within `grace`, then drain the log."""
        await self.health.enter_graceful_shutdown()
        await asyncio.to_thread(self.listener.stop)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.server.stop(grace)
        # Every decision answered is in the database or the fsynced spill file after this.
        await asyncio.to_thread(self.sink.close)
        await asyncio.to_thread(self.threats.close)
        if self.retention is not None:
            await asyncio.to_thread(self.retention.stop)

    async def wait(self) -> None:
        await self.server.wait_for_termination()


async def start_server(settings: Settings, worker: int | None = None) -> RunningServer:
    """Open the store, import and load policies, bind the port, and keep the policies current.

    If the database cannot be reached at start, the server still listens
    (health NOT_SERVING, checks UNAVAILABLE) and retries until it can. A
    database whose schema is older than the code stops the start.

    `worker`: this process's index among the processes serving the same port
    (`policy-engine serve --workers N`); its decision log is a replica of its own
    (replica id suffixed "-w<index>", so its own chain and spill file) and its metrics,
    when enabled, are on the metrics port + index.
    """
    host, _port = split_host_port(settings.listen)
    _refuse_insecure_bind(host, settings)
    security = settings.security
    local_admin_token = None
    if not security.authenticates_callers:
        token_file = settings.edge.local_admin.token_file or default_admin_token_file()
        local_admin_token = await asyncio.to_thread(load_or_create_admin_token, token_file)
        log.info("admin calls need the local admin credential in %s (policyctl reads it)", token_file)

    database = open_database(settings.db_url)
    repository = PolicyRepository(database)
    versions = VersionService(repository)
    registry = PolicyRegistry()
    reloader = Reloader(repository, registry, interval=settings.reload_interval)
    bootstrap = _Bootstrap(settings, database, versions, reloader)
    # Before anything writes (the decision log included): a schema mismatch stops the start
    # here; an unreachable database does not, it is retried in the background.
    ready = await bootstrap.attempt()

    server = grpc.aio.server(
        interceptors=[EdgeInterceptor(build_guard(security, settings.edge, local_admin_token), settings.admission)],
        # Only the workers of one `serve --workers N` share a port; anything else finds it taken.
        options=channel_options(settings.edge, reuse_port=worker is not None),
        # grpc.aio stops taking calls beyond this many in flight: the rest wait unseen until
        # their callers give up (CANCELLED). A backstop only; overload is shed earlier, with
        # RESOURCE_EXHAUSTED, by the EdgeInterceptor's admission (server/admission.py).
        maximum_concurrent_rpcs=security.rate_limits.max_concurrent_rpcs,
    )
    try:
        if security.tls is not None:
            bound = server.add_secure_port(settings.listen, server_credentials(security.tls))
        else:
            bound = server.add_insecure_port(settings.listen)
    except RuntimeError:
        bound = 0
    if bound == 0:
        raise AddressInUseError(
            f"cannot listen on {settings.listen}: the address is in use (is another "
            "policy-engine serve running there?) or not available on this host"
        )
    audit_settings = settings.audit
    metrics_listen = settings.metrics_listen
    if worker is not None:
        replica_id = audit_settings.replica_id or os.environ.get("POLICY_ENGINE_REPLICA_ID") or (
            f"{socket.gethostname()}:{bound}"
        )
        audit_settings = dataclasses.replace(audit_settings, replica_id=f"{replica_id}-w{worker}")
        if metrics_listen:
            metrics_host, metrics_port = split_host_port(metrics_listen)
            if metrics_port:
                bracketed = f"[{metrics_host}]" if ":" in metrics_host else metrics_host
                metrics_listen = f"{bracketed}:{metrics_port + worker}"
    sink, retention, protector = build_audit(audit_settings, database, f"{host}:{bound}", settings.db_url)
    threats = build_threats(settings.threats, database, settings.security.redis)
    decisions = DecisionService(
        registry,
        subjects=build_subject_resolver(security),
        sink=sink,
        threats=threats,
        log_wait=audit_settings.max_wait_seconds,
    )
    authorization_pb2_grpc.add_AuthorizationServiceServicer_to_server(
        AuthorizationServicer(decisions), server
    )
    # Only the decision methods are registered with grpc; everything else is looked up by name.
    unregistered = _UnregisteredMethods(server)
    audit = AuditService(database, repository, protector)
    admin_pb2_grpc.add_PolicyAdminServiceServicer_to_server(
        AdminServicer(versions, audit, RpcAuthorizer()), unregistered
    )
    health_servicer = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, unregistered)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
        reflection.aio.ReflectionServicer((*SERVED, health.SERVICE_NAME, reflection.SERVICE_NAME)),
        unregistered,
    )
    await _set_health(health_servicer, serving=False)
    await server.start()
    log.info("listening on %s:%d", host, bound)

    loop = asyncio.get_running_loop()
    listener = ActivationListener(database, lambda: loop.call_soon_threadsafe(reloader.wake))
    running = RunningServer(server, bound, registry, health_servicer, listener, sink, threats, retention)
    readiness = Readiness(health_servicer, sink, decisions=SERVED[0], admin=SERVED[1])
    running._tasks.append(asyncio.create_task(_keep_current(bootstrap, ready, reloader, registry, readiness)))
    running._tasks.append(asyncio.create_task(readiness.watch()))
    running._tasks.append(asyncio.create_task(_every_second(threats, sink, registry)))
    start_metrics(metrics_listen)
    listener.start()
    return running


def _refuse_insecure_bind(host: str, settings: Settings) -> None:
    security = settings.security
    if is_loopback(host) or (security.tls is not None and security.authenticates_callers):
        return
    missing = " and ".join(
        what
        for what, present in (("TLS", security.tls is not None), ("caller authentication", security.authenticates_callers))
        if not present
    )
    if not settings.insecure:
        raise InsecureBindError(
            f"refusing to listen on {settings.listen}: {missing} not configured, so only a "
            "loopback address is allowed (configure them with --config, or pass --insecure "
            "to override at your risk)"
        )
    log.warning(
        "INSECURE: listening on %s without %s; anyone who can reach this port can ask "
        "for and learn every decision",
        settings.listen,
        missing,
    )


class _Bootstrap:
    """Schema check, import of new policy sets, first load: retried until the database answers."""

    def __init__(
        self, settings: Settings, database: Engine, versions: VersionService, reloader: Reloader
    ) -> None:
        self._settings = settings
        self._database = database
        self._versions = versions
        self._reloader = reloader

    async def attempt(self) -> bool:
        try:
            await asyncio.to_thread(ensure_schema, self._database, redacted_url(self._settings.db_url))
            policies = self._settings.policies
            if policies is not None and policies.is_dir():
                bundles = await asyncio.to_thread(load_bundles, policies)
                author = f"{getpass.getuser()} (policy-engine serve)"
                for record in await asyncio.to_thread(self._versions.import_new, bundles, author):
                    log.info("imported policy set %s as version %d", record.policy_set, record.number)
            await self._reloader.sync()
        except StoreUnavailableError as exc:
            log.warning("%s; retrying", exc)
            return False
        return True


async def _keep_current(
    bootstrap: _Bootstrap,
    ready: bool,
    reloader: Reloader,
    registry: PolicyRegistry,
    readiness: Readiness,
) -> None:
    """Retry the bootstrap until it succeeds, report SERVING once a version is loaded, then reload."""
    delay = 0.5
    while not ready:
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)
        try:
            ready = await bootstrap.attempt()
        except SchemaOutdatedError as exc:
            log.error("%s", exc)
            return
    if not registry.snapshot():
        log.warning("no policy set is active: every Check will fail until one is activated")
    while not registry.snapshot():
        with contextlib.suppress(Exception):
            await reloader.sync()
        await asyncio.sleep(0.5)
    await readiness.policies_loaded()
    await reloader.run()


async def _every_second(
    threats: ThreatMonitor, sink: AuditSink, registry: PolicyRegistry, interval: float = 1.0
) -> None:
    """Refresh this replica's copy of the quarantines (shared through the database) and the gauges."""
    while True:
        try:
            await asyncio.to_thread(threats.refresh)
        except Exception as exc:  # noqa: BLE001 - the database may be away; keep the last copy
            log.debug("cannot refresh quarantines: %s", exc)
        observe_gauges(sink, registry)
        await asyncio.sleep(interval)


async def _set_health(health_servicer: HealthServicer, serving: bool) -> None:
    status = (
        health_pb2.HealthCheckResponse.SERVING
        if serving
        else health_pb2.HealthCheckResponse.NOT_SERVING
    )
    for service in ("", *SERVED):
        await health_servicer.set(service, status)
