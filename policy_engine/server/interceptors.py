"""Server interceptors. ErrorStatusInterceptor is the one place errors become gRPC statuses."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from policy_engine.errors import (
    BundleError,
    InvalidRequestError,
    NoActiveVersionError,
    NotFoundError,
    NotReadyError,
    PreconditionFailedError,
    StoreUnavailableError,
    UnsupportedError,
)

__all__ = ["ErrorStatusInterceptor", "message_for", "status_for"]

log = logging.getLogger(__name__)

_STATUS: tuple[tuple[type[Exception], grpc.StatusCode], ...] = (
    (InvalidRequestError, grpc.StatusCode.INVALID_ARGUMENT),
    (BundleError, grpc.StatusCode.INVALID_ARGUMENT),
    (PreconditionFailedError, grpc.StatusCode.FAILED_PRECONDITION),
    (NotReadyError, grpc.StatusCode.UNAVAILABLE),
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


def message_for(exc: Exception) -> str:
    """The client-facing message: a refused bundle lists one problem per line."""
    if isinstance(exc, BundleError):
        count = len(exc.problems)
        return f"bundle refused, {count} problem{'s' if count != 1 else ''}:\n" + "\n".join(
            str(p) for p in exc.problems
        )
    return str(exc)


class ErrorStatusInterceptor(grpc.aio.ServerInterceptor):
    """Known errors become their status with their message; anything else INTERNAL, details logged."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        if handler.unary_unary is not None:
            inner = handler.unary_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                try:
                    return await inner(request, context)
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:
                    await _abort(context, exc, method)

            return grpc.unary_unary_rpc_method_handler(
                unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            inner_stream = handler.unary_stream

            async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                try:
                    async for item in inner_stream(request, context):
                        yield item
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:
                    await _abort(context, exc, method)

            return grpc.unary_stream_rpc_method_handler(
                stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


async def _abort(context: grpc.aio.ServicerContext, exc: Exception, method: str) -> None:
    code = status_for(exc)
    if code is None:
        log.exception("internal error in %s", method)
        await context.abort(grpc.StatusCode.INTERNAL, "internal error")
    await context.abort(code, message_for(exc))
