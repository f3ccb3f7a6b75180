"""grpc's asyncio health service, with List (which grpc's own leaves unimplemented)."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health, health_pb2

__all__ = ["MAX_WATCHERS", "HealthServicer"]

# Health needs no credentials, and a Watch is held open: without a bound, anyone could hold
# every one of the server's concurrent calls (maximum_concurrent_rpcs) with watches alone.
MAX_WATCHERS = 100


class HealthServicer(health.aio.HealthServicer):
    """Check, Watch and List over the statuses set with `set`; NOT_SERVING for all once shutting down."""

    def __init__(self, max_watchers: int = MAX_WATCHERS) -> None:
        super().__init__()
        self._max_watchers = max_watchers
        self._watching = 0
        self._stopping = False
        self._statuses: dict[str, health_pb2.HealthCheckResponse.ServingStatus] = {
            "": health_pb2.HealthCheckResponse.SERVING
        }

    async def set(self, service: str, status: health_pb2.HealthCheckResponse.ServingStatus) -> None:
        if self._stopping:
            return
        self._statuses[service] = status
        await super().set(service, status)

    async def enter_graceful_shutdown(self) -> None:
        self._stopping = True
        for service in self._statuses:
            self._statuses[service] = health_pb2.HealthCheckResponse.NOT_SERVING
        await super().enter_graceful_shutdown()

    async def Watch(  # noqa: N802 - gRPC method name
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> None:
        if self._watching >= self._max_watchers:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many health watchers; retry later")
        self._watching += 1
        try:
            await super().Watch(request, context)
        finally:
            self._watching -= 1

    async def List(  # noqa: N802 - gRPC method name
        self, request: health_pb2.HealthListRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthListResponse:
        return health_pb2.HealthListResponse(
            statuses={
                service: health_pb2.HealthCheckResponse(status=status)
                for service, status in self._statuses.items()
            }
        )
