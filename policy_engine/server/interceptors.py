"""Server interceptors. ErrorStatusInterceptor is the one place errors become gRPC statuses."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from policy_engine.errors import (
    InvalidRequestError,
    NoActiveVersionError,
    NotFoundError,
    StoreUnavailableError,
    UnsupportedError,
)

__all__ = ["ErrorStatusInterceptor", "status_for"]

log = logging.getLogger(__name__)

_STATUS: tuple[tuple[type[Exception], grpc.StatusCode], ...] = (
    (InvalidRequestError, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (NoActiveVersionError, grpc.StatusCode.FAILED_PRECONDITION),
    (UnsupportedError, grpc.StatusCode.UNIMPLEMENTED),
    (StoreUnavailableError, grpc.StatusCode.UNAVAILABLE),
)


def status_for(exc: Exception) -> grpc.StatusCode | None:
    """The status of a known error; None for anything else (which becomes INTERNAL)."""
    for kind, code in _STATUS:
        if isinstance(exc, kind):
            return code
    return None


class ErrorStatusInterceptor(grpc.aio.ServerInterceptor):
    """Known errors become their status with their message; anything else INTERNAL, details logged."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        inner = handler.unary_unary
        method = handler_call_details.method

        async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                return await inner(request, context)
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                code = status_for(exc)
                if code is None:
                    log.exception("internal error in %s", method)
                    await context.abort(grpc.StatusCode.INTERNAL, "internal error")
                await context.abort(code, str(exc))

        return grpc.unary_unary_rpc_method_handler(
            guarded,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
