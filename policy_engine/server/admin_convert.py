"""Pure functions between the admin API's protobuf messages and the core's types."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from google.protobuf import timestamp_pb2

from policy_engine import limits
from policy_engine.bundle import Bundle
from policy_engine.errors import InvalidRequestError
from policy_engine.service.versions import Provenance, PushResult, VersionDiff, VersionListing
from policy_engine.service.audit_log import DecisionDetail, ReplayReport
from policy_engine.store import ActivationRecord, VersionRecord
from policy_engine.store.audit_tables import SecurityEvent
from policy_engine.store.decision_log import StoredDecision
from policy_engine.v1 import admin_pb2

__all__ = [
    "activation",
    "bundle_from_push",
    "content",
    "diff_response",
    "provenance",
    "push_response",
    "version_info",
]


def bundle_from_push(request: admin_pb2.PushVersionRequest) -> Bundle:
    if not request.policy_set:
        raise InvalidRequestError("policy_set", "is required")
    if not request.content.model:
        raise InvalidRequestError("content.model", "is required")
    size = request.content.ByteSize()
    if size > limits.MAX_BUNDLE_BYTES:
        raise InvalidRequestError("content", f"is larger than {limits.MAX_BUNDLE_BYTES} bytes")
    for path in request.content.tests:
        if not path.startswith("tests/") or ".." in path or not path.endswith(".yaml"):
            raise InvalidRequestError(f"content.tests[{path!r}]", "must be tests/<name>.yaml")
    return Bundle(
        name=request.policy_set,
        model_text=request.content.model,
        policy_text=request.content.policy,
        tests=dict(request.content.tests),
        schema_text=request.content.schema,
        roles_text=request.content.roles,
    )


def provenance(message: admin_pb2.Provenance) -> Provenance:
    if not message.has_git:
        return Provenance()
    return Provenance(git_commit=message.git_commit or None, git_dirty=message.git_dirty)


def version_info(record: VersionRecord, active: bool) -> admin_pb2.VersionInfo:
    return admin_pb2.VersionInfo(
        policy_set=record.policy_set,
        number=record.number,
        sha256=record.sha256,
        message=record.message,
        author=record.author,
        provenance=admin_pb2.Provenance(
            git_commit=record.git_commit or "",
            git_dirty=bool(record.git_dirty),
            has_git=record.git_commit is not None,
        ),
        created_at=_timestamp(record.created_at),
        rule_count=record.rule_count,
        active=active,
    )


def listing(item: VersionListing) -> admin_pb2.VersionInfo:
    return version_info(item.version, item.active)


def content(record: VersionRecord) -> admin_pb2.BundleContent:
    return admin_pb2.BundleContent(
        model=record.model_text,
        policy=record.policy_text,
        tests=dict(record.tests),
        schema=record.schema_text,
        roles=record.roles_text,
    )


def activation(record: ActivationRecord) -> admin_pb2.Activation:
    return admin_pb2.Activation(
        id=record.id,
        policy_set=record.policy_set,
        version=record.version,
        previous_version=record.previous_version or 0,
        actor=record.actor,
        reason=record.reason,
        created_at=_timestamp(record.created_at),
    )


def push_response(result: PushResult) -> admin_pb2.PushVersionResponse:
    response = admin_pb2.PushVersionResponse(
        version=version_info(result.version, active=result.activation is not None),
        created=result.created,
    )
    if result.activation is not None:
        response.activation.CopyFrom(activation(result.activation))
    return response


def diff_response(diff: VersionDiff) -> admin_pb2.DiffVersionsResponse:
    return admin_pb2.DiffVersionsResponse(
        added=[admin_pb2.RuleChange(rule=r.text, line=r.line or 0) for r in diff.added],
        removed=[admin_pb2.RuleChange(rule=r.text, line=r.line or 0) for r in diff.removed],
        model_diff=diff.model_diff,
        tests_changed=list(diff.tests_changed),
        roles_diff=diff.roles_diff,
    )


def moment(stamp: timestamp_pb2.Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


def logged(decision: StoredDecision) -> admin_pb2.LoggedDecision:
    return admin_pb2.LoggedDecision(
        decision_id=decision.decision_id,
        decided_at=_timestamp(decision.decided_at),
        policy_set=decision.policy_set,
        policy_version=decision.policy_version,
        tenant=decision.tenant,
        subject=decision.subject,
        actor=decision.actor,
        caller=decision.caller,
        action=decision.action,
        resource=decision.resource,
        allowed=decision.allowed,
        rule=decision.rule,
        reason=decision.reason,
        request_id=decision.request_id,
        latency_us=decision.latency_us,
        replica_id=decision.replica_id,
        seq=decision.seq,
    )


def decision_detail(detail: DecisionDetail) -> admin_pb2.GetDecisionResponse:
    attributes = "" if detail.attributes is None else json.dumps(detail.attributes, sort_keys=True, default=str)
    return admin_pb2.GetDecisionResponse(
        decision=logged(detail.decision),
        attributes_json=attributes,
        hashed_attributes=dict(detail.decision.hashed_attributes),
    )


def replay_response(report: ReplayReport) -> admin_pb2.ReplayDecisionsResponse:
    return admin_pb2.ReplayDecisionsResponse(
        replayed=report.replayed,
        unchanged=report.unchanged,
        allow_to_deny=report.allow_to_deny,
        deny_to_allow=report.deny_to_allow,
        skipped=report.skipped,
        samples=[
            admin_pb2.ReplayFlip(
                decision=logged(flip.decision), now_allowed=flip.now_allowed, rule=flip.rule, reason=flip.reason
            )
            for flip in report.samples
        ],
        rules_responsible=dict(report.rules_responsible),
    )


def security_event(event: SecurityEvent) -> admin_pb2.SecurityEvent:
    return admin_pb2.SecurityEvent(
        id=event.id,
        created_at=_timestamp(event.created_at),
        tenant=event.tenant,
        kind=event.kind,
        principal=event.principal,
        detail_json=json.dumps(dict(event.detail), sort_keys=True, default=str),
    )


def _timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp

