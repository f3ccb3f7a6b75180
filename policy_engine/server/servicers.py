"""gRPC servicers: convert, call the service, convert. Errors are mapped by an interceptor.

What a caller learns of the policy depends on its scopes (sees_policy_text): the
deciding rule's text, explanations and listing details only with `authz:explain`
(or `policy:read`); other callers get reason codes and the decision id, and an
`explain` request from them is PERMISSION_DENIED. The decision log keeps the full
reason either way.
"""

from __future__ import annotations

import grpc

from policy_engine.auth.authorizer import sees_policy_text
from policy_engine.errors import PermissionDeniedError
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
        principal = current_principal.get()
        caller = principal.id
        policy_text = sees_policy_text(principal)
        plain = convert.plain_check(request)
        if plain is not None:
            outcome = self._decisions.check_remembered(plain, caller)
            if outcome is not None:
                return convert.check_response(outcome, False, policy_text)
        _may_explain(request.explain, policy_text)
        outcome = await self._decisions.check(
            convert.check_input(request, caller), timeout=context.time_remaining()
        )
        return convert.check_response(outcome, request.explain, policy_text)

    async def BatchCheck(  # noqa: N802 - gRPC method name
        self, request: authorization_pb2.BatchCheckRequest, context: grpc.aio.ServicerContext
    ) -> authorization_pb2.BatchCheckResponse:
        principal = current_principal.get()
        policy_text = _may_explain(request.explain, sees_policy_text(principal))
        outcome = await self._decisions.batch_check(
            convert.batch_input(request, principal.id), timeout=context.time_remaining()
        )
        return convert.batch_response(outcome, request.explain, policy_text)

    async def FilterAllowed(  # noqa: N802 - gRPC method name
        self, request: authorization_pb2.FilterAllowedRequest, context: grpc.aio.ServicerContext
    ) -> authorization_pb2.FilterAllowedResponse:
        principal = current_principal.get()
        policy_text = _may_explain(request.explain, sees_policy_text(principal))
        outcome = await self._decisions.filter_allowed(
            convert.filter_input(request, principal.id), timeout=context.time_remaining()
        )
        return convert.filter_response(outcome, request, policy_text)

    async def ListAllowed(  # noqa: N802 - gRPC method name
        self, request: authorization_pb2.ListAllowedRequest, context: grpc.aio.ServicerContext
    ) -> authorization_pb2.ListAllowedResponse:
        principal = current_principal.get()
        outcome = await self._decisions.list_allowed(
            convert.list_input(request, principal.id), timeout=context.time_remaining()
        )
        return convert.list_response(outcome, sees_policy_text(principal))


def _may_explain(explain: bool, policy_text: bool) -> bool:
    """`policy_text`, after refusing an explain request from a caller that may not read policy text."""
    if explain and not policy_text:
        raise PermissionDeniedError("explain: needs the authz:explain scope")
    return policy_text
