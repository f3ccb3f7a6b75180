"""gRPC servicers: convert, call the service, convert. Errors are mapped by an interceptor."""

from __future__ import annotations

import grpc

from policy_engine.server import convert
from policy_engine.server.context import current_principal
from policy_engine.service import DecisionService
from policy_engine.v1 import authorization_pb2, authorization_pb2_grpc

__all__ = ["AuthorizationServicer"]


class AuthorizationServicer(authorization_pb2_grpc.AuthorizationServiceServicer):
    def __init__(self, decisions: DecisionService) -> None:
        self._decisions = decisions

    async def Check(  # noqa: N802 - gRPC method name
        self, request: authorization_pb2.CheckRequest, context: grpc.aio.ServicerContext
    ) -> authorization_pb2.CheckResponse:
        caller = current_principal.get().id
        plain = convert.plain_check(request)
        if plain is not None:
            outcome = self._decisions.check_remembered(plain, caller)
            if outcome is not None:
                return convert.check_response(outcome, explain=False)
        outcome = await self._decisions.check(
            convert.check_input(request, caller), timeout=context.time_remaining()
        )
        return convert.check_response(outcome, explain=request.explain)

    async def BatchCheck(  # noqa: N802 - gRPC method name
        self, request: authorization_pb2.BatchCheckRequest, context: grpc.aio.ServicerContext
    ) -> authorization_pb2.BatchCheckResponse:
        outcome = await self._decisions.batch_check(
            convert.batch_input(request, current_principal.get().id), timeout=context.time_remaining()
        )
        return convert.batch_response(outcome, explain=request.explain)

    async def FilterAllowed(  # noqa: N802 - gRPC method name
        self, request: authorization_pb2.FilterAllowedRequest, context: grpc.aio.ServicerContext
    ) -> authorization_pb2.FilterAllowedResponse:
        outcome = await self._decisions.filter_allowed(
            convert.filter_input(request, current_principal.get().id), timeout=context.time_remaining()
        )
        return convert.filter_response(outcome, request)

    async def ListAllowed(  # noqa: N802 - gRPC method name
        self, request: authorization_pb2.ListAllowedRequest, context: grpc.aio.ServicerContext
    ) -> authorization_pb2.ListAllowedResponse:
        outcome = await self._decisions.list_allowed(
            convert.list_input(request, current_principal.get().id), timeout=context.time_remaining()
        )
        return convert.list_response(outcome)
