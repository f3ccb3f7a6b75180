"""PolicyAdminService: convert, call the version service (in a worker thread), convert."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from policy_engine.auth.authorizer import ACTIVATE_METHOD, RpcAuthorizer
from policy_engine.errors import PermissionDeniedError
from policy_engine.server import admin_convert as convert
from policy_engine.server.context import current_principal
from policy_engine.service import DEFAULT_POLICY_SET
from policy_engine.service.audit_log import AuditService
from policy_engine.service.versions import VersionService
from policy_engine.v1 import admin_pb2, admin_pb2_grpc

__all__ = ["AdminServicer"]


class AdminServicer(admin_pb2_grpc.PolicyAdminServiceServicer):
    def __init__(self, versions: VersionService, audit: AuditService, authorizer: RpcAuthorizer) -> None:
        self._versions = versions
        self._audit = audit
        self._authorizer = authorizer

    async def PushVersion(  # noqa: N802 - gRPC method names
        self, request: admin_pb2.PushVersionRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.PushVersionResponse:
        if request.activate and not self._authorizer.allowed(current_principal.get(), ACTIVATE_METHOD):
            raise PermissionDeniedError("push --activate also needs the policy:activate scope")
        result = await asyncio.to_thread(
            self._versions.push,
            convert.bundle_from_push(request),
            message=request.message,
            author=_author(request.author),
            provenance=convert.provenance(request.provenance),
            activate=request.activate,
            reason=request.reason,
        )
        return convert.push_response(result)

    async def ListVersions(  # noqa: N802
        self, request: admin_pb2.ListVersionsRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.ListVersionsResponse:
        listings = await asyncio.to_thread(self._versions.list_versions, _set(request.policy_set))
        return admin_pb2.ListVersionsResponse(versions=[convert.listing(v) for v in listings])

    async def GetVersion(  # noqa: N802
        self, request: admin_pb2.GetVersionRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.GetVersionResponse:
        item = await asyncio.to_thread(
            self._versions.get_version, _set(request.policy_set), request.number
        )
        return admin_pb2.GetVersionResponse(
            version=convert.listing(item), content=convert.content(item.version)
        )

    async def DiffVersions(  # noqa: N802
        self, request: admin_pb2.DiffVersionsRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.DiffVersionsResponse:
        diff = await asyncio.to_thread(
            self._versions.diff, _set(request.policy_set), request.from_number, request.to_number
        )
        return convert.diff_response(diff)

    async def ActivateVersion(  # noqa: N802
        self, request: admin_pb2.ActivateVersionRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.ActivateVersionResponse:
        record = await asyncio.to_thread(
            self._versions.activate,
            _set(request.policy_set),
            request.number,
            author=_author(request.author),
            reason=request.reason,
            expected_active=request.expected_active_version or None,
            expect_none_active=request.expect_none_active,
        )
        return admin_pb2.ActivateVersionResponse(activation=convert.activation(record))

    async def Rollback(  # noqa: N802
        self, request: admin_pb2.RollbackRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.RollbackResponse:
        record = await asyncio.to_thread(
            self._versions.rollback,
            _set(request.policy_set),
            author=_author(request.author),
            reason=request.reason,
            to_number=request.to_number or None,
            expected_active=request.expected_active_version or None,
        )
        return admin_pb2.RollbackResponse(activation=convert.activation(record))

    async def ListActivations(  # noqa: N802
        self, request: admin_pb2.ListActivationsRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.ListActivationsResponse:
        records = await asyncio.to_thread(
            self._versions.list_activations, request.policy_set, request.limit or 100
        )
        return admin_pb2.ListActivationsResponse(
            activations=[convert.activation(r) for r in records]
        )

    async def WatchActivations(  # noqa: N802
        self, request: admin_pb2.WatchActivationsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[admin_pb2.Activation]:
        async for record in self._versions.watch(request.policy_set, request.since_id):
            yield convert.activation(record)


    async def QueryDecisions(  # noqa: N802
        self, request: admin_pb2.QueryDecisionsRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.QueryDecisionsResponse:
        decisions = await asyncio.to_thread(
            self._audit.query,
            subject=request.subject,
            actor=request.actor,
            tenant=request.tenant,
            denied_only=request.denied_only,
            since=convert.moment(request.since) if request.HasField("since") else None,
            limit=request.limit or 100,
        )
        return admin_pb2.QueryDecisionsResponse(decisions=[convert.logged(d) for d in decisions])

    async def GetDecision(  # noqa: N802
        self, request: admin_pb2.GetDecisionRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.GetDecisionResponse:
        detail = await asyncio.to_thread(self._audit.get, request.decision_id)
        return convert.decision_detail(detail)

    async def VerifyDecisions(  # noqa: N802
        self, request: admin_pb2.VerifyDecisionsRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.VerifyDecisionsResponse:
        report = await asyncio.to_thread(self._audit.verify)
        return admin_pb2.VerifyDecisionsResponse(
            ok=report.ok, rows_checked=report.rows_checked, report=report.lines()
        )

    async def ReplayDecisions(  # noqa: N802
        self, request: admin_pb2.ReplayDecisionsRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.ReplayDecisionsResponse:
        report = await asyncio.to_thread(
            self._audit.replay,
            _set(request.policy_set),
            request.candidate,
            since=convert.moment(request.since) if request.HasField("since") else None,
            limit=request.limit,
            samples=request.samples,
        )
        return convert.replay_response(report)

    async def ReleaseQuarantine(  # noqa: N802
        self, request: admin_pb2.ReleaseQuarantineRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.ReleaseQuarantineResponse:
        released = await asyncio.to_thread(
            self._audit.release,
            request.tenant,
            request.principal,
            by=current_principal.get().id,
            reason=request.reason,
        )
        return admin_pb2.ReleaseQuarantineResponse(released=released)

    async def ListSecurityEvents(  # noqa: N802
        self, request: admin_pb2.ListSecurityEventsRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.ListSecurityEventsResponse:
        events = await asyncio.to_thread(self._audit.security_events, request.limit or 100)
        return admin_pb2.ListSecurityEventsResponse(events=[convert.security_event(e) for e in events])

    async def SetLegalHold(  # noqa: N802
        self, request: admin_pb2.SetLegalHoldRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.SetLegalHoldResponse:
        await asyncio.to_thread(self._audit.set_legal_hold, request.tenant, request.hold)
        return admin_pb2.SetLegalHoldResponse()


def _set(name: str) -> str:
    return name or DEFAULT_POLICY_SET


def _author(claimed: str) -> str:
    """The caller as authenticated (the anonymous one included), never what the request claims."""
    return current_principal.get().id
