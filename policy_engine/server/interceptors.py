"""Server interceptors. ErrorStatusInterceptor is the one place errors become gRPC statuses."""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from sqlalchemy.exc import InterfaceError, OperationalError

from policy_engine.audit.errors import AuditUnavailableError
from policy_engine.auth.authorizer import RpcAuthorizer
from policy_engine.auth.callers import CallerAuthenticator
from policy_engine.auth.credentials import authorization_value
from policy_engine.auth.principal import Principal
from policy_engine.auth.subjects import SubjectTokenResolver
from policy_engine.config import AdmissionSettings
from policy_engine.errors import (
    BundleError,
    DeadlineExceededError,
    InvalidRequestError,
    NoActiveVersionError,
    NotFoundError,
    NotReadyError,
    PermissionDeniedError,
    PreconditionFailedError,
    RateLimitedError,
    StoreUnavailableError,
    UnauthenticatedError,
    UnsupportedError,
)
from policy_engine.logs import bind_request
from policy_engine.metrics import METRICS
from policy_engine.server.admission import Admission
from policy_engine.server.context import current_principal
from policy_engine.server.requests import Refusal, RefusalLog, guarded_deserializer
from policy_engine.server.throttling import ConnectionLimiter, RateLimiter
from policy_engine.v1 import admin_pb2, authorization_pb2

__all__ = ["EdgeInterceptor", "Guard", "message_for", "status_for"]

log = logging.getLogger(__name__)

_STATUS: tuple[tuple[type[Exception], grpc.StatusCode], ...] = (
    (InvalidRequestError, grpc.StatusCode.INVALID_ARGUMENT),
    (BundleError, grpc.StatusCode.INVALID_ARGUMENT),
    (PreconditionFailedError, grpc.StatusCode.FAILED_PRECONDITION),
    (NotReadyError, grpc.StatusCode.UNAVAILABLE),
    (UnauthenticatedError, grpc.StatusCode.UNAUTHENTICATED),
    (PermissionDeniedError, grpc.StatusCode.PERMISSION_DENIED),
    (RateLimitedError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (NoActiveVersionError, grpc.StatusCode.FAILED_PRECONDITION),
    (UnsupportedError, grpc.StatusCode.UNIMPLEMENTED),
    (StoreUnavailableError, grpc.StatusCode.UNAVAILABLE),
    (DeadlineExceededError, grpc.StatusCode.DEADLINE_EXCEEDED),
    # fail-closed audit: the decision's entry cannot be kept, so no decision is given
    (AuditUnavailableError, grpc.StatusCode.UNAVAILABLE),
    # A database failure that escaped the store's own typing (store.db.Guarded): still the
    # database's, so a retry may get past it; its text (SQL, parameters) is not for the caller.
    (OperationalError, grpc.StatusCode.UNAVAILABLE),
    (InterfaceError, grpc.StatusCode.UNAVAILABLE),
)
_UNTOLD = (OperationalError, InterfaceError)


def status_for(exc: Exception) -> grpc.StatusCode | None:
    """The status of a known error; None for anything else (which becomes INTERNAL)."""
    for kind, code in _STATUS:
        if isinstance(exc, kind):
            return code
    return None


def message_for(exc: Exception) -> str:
    """The client-facing message: a refused bundle lists one problem per line."""
    if isinstance(exc, _UNTOLD):
        return "database unavailable"
    if isinstance(exc, BundleError):
        count = len(exc.problems)
        return f"bundle refused, {count} problem{'s' if count != 1 else ''}:\n" + "\n".join(
            str(p) for p in exc.problems
        )
    return str(exc)


# How many decisions a request asks for, by method: what the per-caller decision limit counts.
_AUTHORIZATION = f"/{authorization_pb2.DESCRIPTOR.services_by_name['AuthorizationService'].full_name}/"
_DECISIONS_ASKED: dict[str, Callable[[Any], int]] = {
    _AUTHORIZATION + "Check": lambda request: 1,
    _AUTHORIZATION + "BatchCheck": lambda request: len(request.items),
    _AUTHORIZATION + "FilterAllowed": lambda request: len(request.candidates),
    _AUTHORIZATION + "ListAllowed": lambda request: 1,
}

_ADMIN = f"/{admin_pb2.DESCRIPTOR.services_by_name['PolicyAdminService'].full_name}/"

# Health checks need no credentials, so that load balancers can probe.
UNGUARDED_PREFIX = "/grpc.health.v1.Health/"

# Refused admin calls: one log line per second at most (the rest counted in it), plus metrics.
_refused_admin_log = RefusalLog(log, "refused admin call")


class EdgeInterceptor(grpc.aio.ServerInterceptor):
    """The server's one interceptor: the guard before any work, and errors mapped to statuses.

    Every RPC but health checks passes the `guard` (so load balancers can probe without
    credentials; reflection and streams are guarded). Known errors become their status with
    their message, anything else INTERNAL with the details logged; this is the one place
    where errors become gRPC statuses. The wrapped handler of each method is built once.
    """

    def __init__(self, guard: Guard | None = None, admission: AdmissionSettings | None = None) -> None:
        self._guard = guard
        self.admission = Admission(admission or AdmissionSettings(enabled=False), _DECISIONS_ASKED)
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:  # an unknown method: grpc answers UNIMPLEMENTED; nothing to remember
            return None
        method = handler_call_details.method
        known = self._wrapped.get(method)
        if known is not None and known[0] is handler:
            return known[1]
        guard = None if method.startswith(UNGUARDED_PREFIX) else self._guard
        wrapped = _rewrap(handler, method, _unary(guard, method, self.admission), _stream(guard, method))
        self._wrapped[method] = (handler, wrapped)
        return wrapped


def _unary(guard: Guard | None, method: str, admission: Admission) -> Callable[[Any], Any]:
    def wrap(inner: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if type(request) is Refusal:
                await request.abort(context)
            admitted = 0
            try:
                admitted = admission.admit(method, request, context)
                if guard is None:
                    return await inner(request, context)
                peer = context.peer()
                await _refuse_expired(context)
                guard.enter(peer)
                try:
                    guard.admit(request, context, method)
                    return await inner(request, context)
                finally:
                    guard.leave(peer)
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await _abort(context, exc, method)
            finally:
                admission.release(admitted)

        return call

    return wrap


def _stream(guard: Guard | None, method: str) -> Callable[[Any], Any]:
    """Server- and bidi-streaming handlers come in two shapes: async generators (yield each
    response) and coroutines that write with `context.write` (grpc's own health Watch)."""

    def admit(request: Any, context: grpc.aio.ServicerContext) -> None:
        if guard is not None:
            guard.started(context.peer())
            # For a bidi stream `request` is the request iterator: it has no subject to limit.
            guard.admit(request, context, method)

    def wrap(inner: Callable[..., Any]) -> Callable[..., Any]:
        if not inspect.isasyncgenfunction(inner):

            async def written(request: Any, context: grpc.aio.ServicerContext) -> None:
                if type(request) is Refusal:
                    await request.abort(context)
                try:
                    admit(request, context)
                    await inner(request, context)
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:
                    await _abort(context, exc, method)

            return written

        async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            if type(request) is Refusal:
                await request.abort(context)
            if hasattr(request, "__aiter__"):  # a bidi stream: each message may be a Refusal
                request = _refusing(request, context)
            try:
                admit(request, context)
                async for item in inner(request, context):
                    yield item
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await _abort(context, exc, method)

        return call

    return wrap


async def _refusing(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
    async for item in requests:
        if type(item) is Refusal:
            await item.abort(context)
        yield item


async def _refuse_expired(context: grpc.aio.ServicerContext) -> None:
    """A call whose deadline passed while it waited to run is not decided (nor logged): the
    client has stopped waiting and would never see the answer."""
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        METRICS.refused.labels(code="DEADLINE_EXCEEDED").inc()
        await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline passed before the request was decided")


def _rewrap(
    handler: grpc.RpcMethodHandler,
    method: str,
    unary: Callable[[Any], Any],
    stream: Callable[[Any], Any],
) -> grpc.RpcMethodHandler:
    """The same handler with its behaviour wrapped: `unary` for unary-unary, `stream` for
    server- and bidi-streaming methods (the only shapes this service has); its request
    parser bounded by the method's size limit and answering undecodable bodies itself."""
    codecs = {
        "request_deserializer": guarded_deserializer(handler.request_deserializer, method),
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(unary(handler.unary_unary), **codecs)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(stream(handler.unary_stream), **codecs)
    if handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(stream(handler.stream_stream), **codecs)
    return handler


async def _abort(context: grpc.aio.ServicerContext, exc: Exception, method: str) -> None:
    code = status_for(exc)
    METRICS.refused.labels(code=code.name if code is not None else "INTERNAL").inc()
    if isinstance(exc, UnauthenticatedError):
        METRICS.auth_failures.labels(reason=str(exc).split(":")[0][:60]).inc()
    if method.startswith(_ADMIN) and isinstance(exc, (UnauthenticatedError, PermissionDeniedError)):
        METRICS.security_events.labels(kind="refused_admin_call").inc()
        _refused_admin_log.note(f"{method} from {context.peer()}: {code.name if code else ''} {exc}")
    if code is None:
        log.exception("internal error in %s", method)
        await context.abort(grpc.StatusCode.INTERNAL, "internal error")
    if isinstance(exc, _UNTOLD):
        log.warning("database failure in %s: %s", method, type(exc).__name__)
    trailing: tuple[tuple[str, str], ...] = ()
    if isinstance(exc, RateLimitedError):
        trailing = (("retry-after-ms", str(max(1, round(exc.retry_after * 1000)))),)
    await context.abort(code, message_for(exc), trailing_metadata=trailing)



class Guard:
    """Before any work: per-connection cap, authentication, the system policy, rate limits."""

    def __init__(
        self,
        authenticator: CallerAuthenticator,
        authorizer: RpcAuthorizer,
        caller_limit: RateLimiter,
        decision_limit: RateLimiter,
        subject_limit: RateLimiter,
        rpc_limits: dict[str, RateLimiter],
        connections: ConnectionLimiter,
        connection_calls: RateLimiter | None = None,
        *,
        subjects: SubjectTokenResolver | None = None,
    ) -> None:
        self._authenticator = authenticator
        self._subjects = subjects
        self._authorizer = authorizer
        self._caller_limit = caller_limit
        self._decision_limit = decision_limit
        self._subject_limit = subject_limit
        self._rpc_limits = rpc_limits
        self._connections = connections
        self._connection_calls = connection_calls
        # Without caller authentication every caller of a decision method that presents no
        # credential is the same anonymous principal: make it once.
        self._anonymous: Principal | None = (
            None if authenticator.enabled else authenticator.authenticate(None, None)
        )
        # The system policy reads only the caller's scopes and the method, so its answer is
        # remembered per (scopes, method) when the authorizer is the stock one.
        self._memo_allowed = type(authorizer) is RpcAuthorizer
        self._allowed: dict[tuple[frozenset[str], str], bool] = {}

    def started(self, peer: str) -> None:
        """Count a call started on this connection; refused beyond its rate (streams opened and
        cancelled at once count too: that is how a flood of them is slowed)."""
        if self._connection_calls is not None:
            wait = self._connection_calls.try_acquire(peer)
            if wait:
                raise RateLimitedError("too many calls started on this connection", wait)

    def enter(self, peer: str) -> None:
        """Count a request in flight on this connection; refused beyond the cap."""
        self.started(peer)
        if not self._connections.enter(peer):
            raise RateLimitedError("too many concurrent requests on this connection", 0.05)

    def leave(self, peer: str) -> None:
        self._connections.leave(peer)

    def admit(self, request: Any, context: grpc.aio.ServicerContext, method: str) -> None:
        authorization = authorization_value(context.invocation_metadata())
        if authorization is None and self._anonymous is not None and method.startswith(_AUTHORIZATION):
            principal = self._anonymous
        else:  # a decision caller presenting the local admin credential gets its scopes (explain)
            principal = self._authenticator.authenticate(authorization, context.auth_context())
        if not self._authorized(principal, method):
            raise PermissionDeniedError(f"{principal.id!r} may not call {method}")
        rpc = method.rsplit("/", 1)[-1]
        limiter = self._rpc_limits.get(rpc)
        now = time.monotonic()
        if limiter is None:
            wait = self._caller_limit.try_acquire(principal.id, now)
        else:
            wait = limiter.try_acquire(f"{rpc}|{principal.id}", now)
        if wait:
            raise RateLimitedError(f"rate limit exceeded for caller {principal.id!r}", wait)
        decisions = _DECISIONS_ASKED.get(method)
        if decisions is not None:
            wait = self._decision_limit.try_acquire(principal.id, now, decisions(request))
            if wait:
                raise RateLimitedError(f"decision rate limit exceeded for caller {principal.id!r}", wait)
        subject = getattr(getattr(request, "subject", None), "id", "")
        token = getattr(request, "subject_token", "")
        if token and self._subjects is not None:
            subject = self._subjects.subject_of(subject, token)  # the verified user is limited
        if subject:
            wait = self._subject_limit.try_acquire(f"{getattr(request, 'tenant', '')}|{subject}", now)
            if wait:
                raise RateLimitedError("rate limit exceeded for this subject", wait)
        current_principal.set(principal)
        bind_request(rpc=method, caller=principal.id)

    def _authorized(self, principal: Principal, method: str) -> bool:
        if not self._memo_allowed:
            return self._authorizer.allowed(principal, method)
        key = (principal.scopes, method)
        allowed = self._allowed.get(key)
        if allowed is None:
            allowed = self._authorizer.allowed(principal, method)
            if len(self._allowed) >= 4096:
                self._allowed.clear()
            self._allowed[key] = allowed
        return allowed
