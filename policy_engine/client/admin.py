"""AdminClient: the admin API (PolicyAdminService) with typed results, for policyctl and scripts."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC as _UTC
from datetime import datetime

from typing import Any

import grpc

from policy_engine.client._core import TLSConfig, TokenSource, call_metadata, channel_options
from policy_engine.v1 import admin_pb2, admin_pb2_grpc

__all__ = [
    "ActivationInfo",
    "AdminClient",
    "BundleFiles",
    "DiffResult",
    "LoggedDecision",
    "PushOutcome",
    "ReplayResult",
    "VersionSummary",
]

DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class BundleFiles:
    model: str
    policy: str
    tests: Mapping[str, str]
    schema: str = ""
    roles: str = ""


@dataclass(frozen=True)
class VersionSummary:
    policy_set: str
    number: int
    sha256: str
    message: str
    author: str
    git_commit: str | None
    git_dirty: bool
    created_at: datetime
    rule_count: int
    active: bool


@dataclass(frozen=True)
class ActivationInfo:
    id: int
    policy_set: str
    version: int
    previous_version: int | None
    actor: str
    reason: str
    created_at: datetime


@dataclass(frozen=True)
class PushOutcome:
    version: VersionSummary
    created: bool
    activation: ActivationInfo | None


@dataclass(frozen=True)
class DiffResult:
    added: tuple[tuple[str, int], ...]
    removed: tuple[tuple[str, int], ...]
    model_diff: str
    tests_changed: tuple[str, ...]
    roles_diff: str = ""


@dataclass(frozen=True)
class LoggedDecision:
    decision_id: str
    decided_at: datetime
    policy_set: str
    policy_version: int
    tenant: str
    subject: str
    actor: str
    caller: str
    action: str
    resource: str
    allowed: bool
    rule: str
    reason: str
    request_id: str
    latency_us: int
    replica_id: str
    seq: int


@dataclass(frozen=True)
class ReplayResult:
    replayed: int
    unchanged: int
    allow_to_deny: int
    deny_to_allow: int
    skipped: int
    samples: tuple[tuple[LoggedDecision, bool, str, str], ...]
    rules_responsible: Mapping[str, int]


class AdminClient:
    """Blocking admin client over one channel; gRPC errors propagate as grpc.RpcError."""

    def __init__(
        self,
        target: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        tls: TLSConfig | None = None,
        token: TokenSource = None,
    ) -> None:
        options = channel_options(tls)
        if tls is not None:
            self._channel = grpc.secure_channel(target, tls.credentials(), options=options)
        else:
            self._channel = grpc.insecure_channel(target, options=options)
        self._stub = admin_pb2_grpc.PolicyAdminServiceStub(self._channel)
        self._timeout = timeout
        self._token = token

    def _call(self) -> dict[str, Any]:
        return {"timeout": self._timeout, "metadata": call_metadata(self._token)}

    def push(
        self,
        policy_set: str,
        files: BundleFiles,
        *,
        message: str,
        author: str,
        git_commit: str | None = None,
        git_dirty: bool = False,
        activate: bool = False,
        reason: str = "",
    ) -> PushOutcome:
        response = self._stub.PushVersion(
            admin_pb2.PushVersionRequest(
                policy_set=policy_set,
                content=admin_pb2.BundleContent(
                    model=files.model,
                    policy=files.policy,
                    tests=dict(files.tests),
                    schema=files.schema,
                    roles=files.roles,
                ),
                message=message,
                author=author,
                provenance=admin_pb2.Provenance(
                    git_commit=git_commit or "", git_dirty=git_dirty, has_git=git_commit is not None
                ),
                activate=activate,
                reason=reason,
            ),
            **self._call(),
        )
        return PushOutcome(
            version=_version(response.version),
            created=response.created,
            activation=_activation(response.activation) if response.HasField("activation") else None,
        )

    def versions(self, policy_set: str) -> list[VersionSummary]:
        response = self._stub.ListVersions(
            admin_pb2.ListVersionsRequest(policy_set=policy_set), **self._call()
        )
        return [_version(v) for v in response.versions]

    def get(self, policy_set: str, number: int) -> tuple[VersionSummary, BundleFiles]:
        response = self._stub.GetVersion(
            admin_pb2.GetVersionRequest(policy_set=policy_set, number=number), **self._call()
        )
        content = response.content
        files = BundleFiles(content.model, content.policy, dict(content.tests), content.schema, content.roles)
        return _version(response.version), files

    def diff(self, policy_set: str, from_number: int, to_number: int) -> DiffResult:
        response = self._stub.DiffVersions(
            admin_pb2.DiffVersionsRequest(
                policy_set=policy_set, from_number=from_number, to_number=to_number
            ),
            **self._call(),
        )
        return DiffResult(
            added=tuple((c.rule, c.line) for c in response.added),
            removed=tuple((c.rule, c.line) for c in response.removed),
            model_diff=response.model_diff,
            tests_changed=tuple(response.tests_changed),
            roles_diff=response.roles_diff,
        )

    def activate(
        self,
        policy_set: str,
        number: int,
        *,
        author: str,
        reason: str,
        expected_active: int | None = None,
    ) -> ActivationInfo:
        response = self._stub.ActivateVersion(
            admin_pb2.ActivateVersionRequest(
                policy_set=policy_set,
                number=number,
                author=author,
                reason=reason,
                expected_active_version=expected_active or 0,
            ),
            **self._call(),
        )
        return _activation(response.activation)

    def rollback(
        self,
        policy_set: str,
        *,
        author: str,
        reason: str,
        to_number: int | None = None,
        expected_active: int | None = None,
    ) -> ActivationInfo:
        response = self._stub.Rollback(
            admin_pb2.RollbackRequest(
                policy_set=policy_set,
                to_number=to_number or 0,
                author=author,
                reason=reason,
                expected_active_version=expected_active or 0,
            ),
            **self._call(),
        )
        return _activation(response.activation)

    def activations(self, policy_set: str = "", limit: int = 50) -> list[ActivationInfo]:
        response = self._stub.ListActivations(
            admin_pb2.ListActivationsRequest(policy_set=policy_set, limit=limit),
            **self._call(),
        )
        return [_activation(a) for a in response.activations]

    def watch(self, policy_set: str = "", since_id: int = 0) -> Iterator[ActivationInfo]:
        """Activations as they happen; runs until the caller stops iterating."""
        stream = self._stub.WatchActivations(
            admin_pb2.WatchActivationsRequest(policy_set=policy_set, since_id=since_id),
            metadata=call_metadata(self._token),
        )
        try:
            for message in stream:
                yield _activation(message)
        finally:
            stream.cancel()

    def decisions(
        self,
        *,
        subject: str = "",
        actor: str = "",
        tenant: str = "",
        denied_only: bool = False,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[LoggedDecision]:
        request = admin_pb2.QueryDecisionsRequest(
            subject=subject, actor=actor, tenant=tenant, denied_only=denied_only, limit=limit
        )
        if since is not None:
            request.since.FromDatetime(since)
        response = self._stub.QueryDecisions(request, **self._call())
        return [_logged(d) for d in response.decisions]

    def decision(self, decision_id: str) -> tuple[LoggedDecision, str, dict[str, str]]:
        """A decision, its attributes as JSON ("" without the key) and its hashed attributes."""
        response = self._stub.GetDecision(
            admin_pb2.GetDecisionRequest(decision_id=decision_id), **self._call()
        )
        return _logged(response.decision), response.attributes_json, dict(response.hashed_attributes)

    def verify_decisions(self) -> tuple[bool, int, list[str]]:
        response = self._stub.VerifyDecisions(admin_pb2.VerifyDecisionsRequest(), **self._call())
        return response.ok, response.rows_checked, list(response.report)

    def replay(
        self, policy_set: str, candidate: int, *, since: datetime | None = None, limit: int = 0, samples: int = 0
    ) -> ReplayResult:
        request = admin_pb2.ReplayDecisionsRequest(
            policy_set=policy_set, candidate=candidate, limit=limit, samples=samples
        )
        if since is not None:
            request.since.FromDatetime(since)
        response = self._stub.ReplayDecisions(request, **self._call())
        return ReplayResult(
            replayed=response.replayed,
            unchanged=response.unchanged,
            allow_to_deny=response.allow_to_deny,
            deny_to_allow=response.deny_to_allow,
            skipped=response.skipped,
            samples=tuple(
                (_logged(f.decision), f.now_allowed, f.rule, f.reason) for f in response.samples
            ),
            rules_responsible=dict(response.rules_responsible),
        )

    def release(self, tenant: str, principal: str, reason: str = "") -> bool:
        response = self._stub.ReleaseQuarantine(
            admin_pb2.ReleaseQuarantineRequest(tenant=tenant, principal=principal, reason=reason),
            **self._call(),
        )
        return response.released

    def security_events(self, limit: int = 50) -> list[dict[str, object]]:
        response = self._stub.ListSecurityEvents(
            admin_pb2.ListSecurityEventsRequest(limit=limit), **self._call()
        )
        return [
            {
                "id": e.id,
                "created_at": e.created_at.ToDatetime(tzinfo=_UTC),
                "tenant": e.tenant,
                "kind": e.kind,
                "principal": e.principal,
                "detail": e.detail_json,
            }
            for e in response.events
        ]

    def set_legal_hold(self, tenant: str, hold: bool) -> None:
        self._stub.SetLegalHold(admin_pb2.SetLegalHoldRequest(tenant=tenant, hold=hold), **self._call())

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _version(message: admin_pb2.VersionInfo) -> VersionSummary:
    provenance = message.provenance
    return VersionSummary(
        policy_set=message.policy_set,
        number=message.number,
        sha256=message.sha256,
        message=message.message,
        author=message.author,
        git_commit=provenance.git_commit if provenance.has_git else None,
        git_dirty=provenance.git_dirty,
        created_at=message.created_at.ToDatetime(tzinfo=_UTC),
        rule_count=message.rule_count,
        active=message.active,
    )


def _logged(message: admin_pb2.LoggedDecision) -> LoggedDecision:
    return LoggedDecision(
        decision_id=message.decision_id,
        decided_at=message.decided_at.ToDatetime(tzinfo=_UTC),
        policy_set=message.policy_set,
        policy_version=message.policy_version,
        tenant=message.tenant,
        subject=message.subject,
        actor=message.actor,
        caller=message.caller,
        action=message.action,
        resource=message.resource,
        allowed=message.allowed,
        rule=message.rule,
        reason=message.reason,
        request_id=message.request_id,
        latency_us=message.latency_us,
        replica_id=message.replica_id,
        seq=message.seq,
    )


def _activation(message: admin_pb2.Activation) -> ActivationInfo:
    return ActivationInfo(
        id=message.id,
        policy_set=message.policy_set,
        version=message.version,
        previous_version=message.previous_version or None,
        actor=message.actor,
        reason=message.reason,
        created_at=message.created_at.ToDatetime(tzinfo=_UTC),
    )

