import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LoggedDecision(_message.Message):
    __slots__ = ("decision_id", "decided_at", "policy_set", "policy_version", "tenant", "subject", "actor", "caller", "action", "resource", "allowed", "rule", "reason", "request_id", "latency_us", "replica_id", "seq")
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    POLICY_SET_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    LATENCY_US_FIELD_NUMBER: _ClassVar[int]
    REPLICA_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    decided_at: _timestamp_pb2.Timestamp
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
    def __init__(self, decision_id: _Optional[str] = ..., decided_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., policy_set: _Optional[str] = ..., policy_version: _Optional[int] = ..., tenant: _Optional[str] = ..., subject: _Optional[str] = ..., actor: _Optional[str] = ..., caller: _Optional[str] = ..., action: _Optional[str] = ..., resource: _Optional[str] = ..., allowed: _Optional[bool] = ..., rule: _Optional[str] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ..., latency_us: _Optional[int] = ..., replica_id: _Optional[str] = ..., seq: _Optional[int] = ...) -> None: ...

class QueryDecisionsRequest(_message.Message):
    __slots__ = ("subject", "actor", "tenant", "denied_only", "since", "limit")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    DENIED_ONLY_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    subject: str
    actor: str
    tenant: str
    denied_only: bool
    since: _timestamp_pb2.Timestamp
    limit: int
    def __init__(self, subject: _Optional[str] = ..., actor: _Optional[str] = ..., tenant: _Optional[str] = ..., denied_only: _Optional[bool] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., limit: _Optional[int] = ...) -> None: ...

class QueryDecisionsResponse(_message.Message):
    __slots__ = ("decisions",)
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    decisions: _containers.RepeatedCompositeFieldContainer[LoggedDecision]
    def __init__(self, decisions: _Optional[_Iterable[_Union[LoggedDecision, _Mapping]]] = ...) -> None: ...

class GetDecisionRequest(_message.Message):
    __slots__ = ("decision_id",)
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    decision_id: str
    def __init__(self, decision_id: _Optional[str] = ...) -> None: ...

class GetDecisionResponse(_message.Message):
    __slots__ = ("decision", "attributes_json", "hashed_attributes")
    class HashedAttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DECISION_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_JSON_FIELD_NUMBER: _ClassVar[int]
    HASHED_ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    decision: LoggedDecision
    attributes_json: str
    hashed_attributes: _containers.ScalarMap[str, str]
    def __init__(self, decision: _Optional[_Union[LoggedDecision, _Mapping]] = ..., attributes_json: _Optional[str] = ..., hashed_attributes: _Optional[_Mapping[str, str]] = ...) -> None: ...

class VerifyDecisionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class VerifyDecisionsResponse(_message.Message):
    __slots__ = ("ok", "rows_checked", "report")
    OK_FIELD_NUMBER: _ClassVar[int]
    ROWS_CHECKED_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    rows_checked: int
    report: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ok: _Optional[bool] = ..., rows_checked: _Optional[int] = ..., report: _Optional[_Iterable[str]] = ...) -> None: ...

class ReplayDecisionsRequest(_message.Message):
    __slots__ = ("policy_set", "candidate", "since", "limit", "samples")
    POLICY_SET_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    policy_set: str
    candidate: int
    since: _timestamp_pb2.Timestamp
    limit: int
    samples: int
    def __init__(self, policy_set: _Optional[str] = ..., candidate: _Optional[int] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., limit: _Optional[int] = ..., samples: _Optional[int] = ...) -> None: ...

class ReplayFlip(_message.Message):
    __slots__ = ("decision", "now_allowed", "rule", "reason")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    NOW_ALLOWED_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    decision: LoggedDecision
    now_allowed: bool
    rule: str
    reason: str
    def __init__(self, decision: _Optional[_Union[LoggedDecision, _Mapping]] = ..., now_allowed: _Optional[bool] = ..., rule: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ReplayDecisionsResponse(_message.Message):
    __slots__ = ("replayed", "unchanged", "allow_to_deny", "deny_to_allow", "skipped", "samples", "rules_responsible")
    class RulesResponsibleEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    ALLOW_TO_DENY_FIELD_NUMBER: _ClassVar[int]
    DENY_TO_ALLOW_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    RULES_RESPONSIBLE_FIELD_NUMBER: _ClassVar[int]
    replayed: int
    unchanged: int
    allow_to_deny: int
    deny_to_allow: int
    skipped: int
    samples: _containers.RepeatedCompositeFieldContainer[ReplayFlip]
    rules_responsible: _containers.ScalarMap[str, int]
    def __init__(self, replayed: _Optional[int] = ..., unchanged: _Optional[int] = ..., allow_to_deny: _Optional[int] = ..., deny_to_allow: _Optional[int] = ..., skipped: _Optional[int] = ..., samples: _Optional[_Iterable[_Union[ReplayFlip, _Mapping]]] = ..., rules_responsible: _Optional[_Mapping[str, int]] = ...) -> None: ...

class ReleaseQuarantineRequest(_message.Message):
    __slots__ = ("tenant", "principal", "reason")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    principal: str
    reason: str
    def __init__(self, tenant: _Optional[str] = ..., principal: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ReleaseQuarantineResponse(_message.Message):
    __slots__ = ("released",)
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    released: bool
    def __init__(self, released: _Optional[bool] = ...) -> None: ...

class ListSecurityEventsRequest(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: int
    def __init__(self, limit: _Optional[int] = ...) -> None: ...

class SecurityEvent(_message.Message):
    __slots__ = ("id", "created_at", "tenant", "kind", "principal", "detail_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    DETAIL_JSON_FIELD_NUMBER: _ClassVar[int]
    id: int
    created_at: _timestamp_pb2.Timestamp
    tenant: str
    kind: str
    principal: str
    detail_json: str
    def __init__(self, id: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., tenant: _Optional[str] = ..., kind: _Optional[str] = ..., principal: _Optional[str] = ..., detail_json: _Optional[str] = ...) -> None: ...

class ListSecurityEventsResponse(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[SecurityEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[SecurityEvent, _Mapping]]] = ...) -> None: ...

class SetLegalHoldRequest(_message.Message):
    __slots__ = ("tenant", "hold")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    HOLD_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    hold: bool
    def __init__(self, tenant: _Optional[str] = ..., hold: _Optional[bool] = ...) -> None: ...

class SetLegalHoldResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class BundleContent(_message.Message):
    __slots__ = ("model", "policy", "tests", "schema", "roles")
    class TestsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    TESTS_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    model: str
    policy: str
    tests: _containers.ScalarMap[str, str]
    schema: str
    roles: str
    def __init__(self, model: _Optional[str] = ..., policy: _Optional[str] = ..., tests: _Optional[_Mapping[str, str]] = ..., schema: _Optional[str] = ..., roles: _Optional[str] = ...) -> None: ...

class Provenance(_message.Message):
    __slots__ = ("git_commit", "git_dirty", "has_git")
    GIT_COMMIT_FIELD_NUMBER: _ClassVar[int]
    GIT_DIRTY_FIELD_NUMBER: _ClassVar[int]
    HAS_GIT_FIELD_NUMBER: _ClassVar[int]
    git_commit: str
    git_dirty: bool
    has_git: bool
    def __init__(self, git_commit: _Optional[str] = ..., git_dirty: _Optional[bool] = ..., has_git: _Optional[bool] = ...) -> None: ...

class VersionInfo(_message.Message):
    __slots__ = ("policy_set", "number", "sha256", "message", "author", "provenance", "created_at", "rule_count", "active")
    POLICY_SET_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    RULE_COUNT_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    policy_set: str
    number: int
    sha256: str
    message: str
    author: str
    provenance: Provenance
    created_at: _timestamp_pb2.Timestamp
    rule_count: int
    active: bool
    def __init__(self, policy_set: _Optional[str] = ..., number: _Optional[int] = ..., sha256: _Optional[str] = ..., message: _Optional[str] = ..., author: _Optional[str] = ..., provenance: _Optional[_Union[Provenance, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., rule_count: _Optional[int] = ..., active: _Optional[bool] = ...) -> None: ...

class Problem(_message.Message):
    __slots__ = ("file", "line", "message")
    FILE_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    file: str
    line: int
    message: str
    def __init__(self, file: _Optional[str] = ..., line: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class PushVersionRequest(_message.Message):
    __slots__ = ("policy_set", "content", "message", "author", "provenance", "activate", "reason")
    POLICY_SET_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    ACTIVATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    policy_set: str
    content: BundleContent
    message: str
    author: str
    provenance: Provenance
    activate: bool
    reason: str
    def __init__(self, policy_set: _Optional[str] = ..., content: _Optional[_Union[BundleContent, _Mapping]] = ..., message: _Optional[str] = ..., author: _Optional[str] = ..., provenance: _Optional[_Union[Provenance, _Mapping]] = ..., activate: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class PushVersionResponse(_message.Message):
    __slots__ = ("version", "created", "activation")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    ACTIVATION_FIELD_NUMBER: _ClassVar[int]
    version: VersionInfo
    created: bool
    activation: Activation
    def __init__(self, version: _Optional[_Union[VersionInfo, _Mapping]] = ..., created: _Optional[bool] = ..., activation: _Optional[_Union[Activation, _Mapping]] = ...) -> None: ...

class ListVersionsRequest(_message.Message):
    __slots__ = ("policy_set",)
    POLICY_SET_FIELD_NUMBER: _ClassVar[int]
    policy_set: str
    def __init__(self, policy_set: _Optional[str] = ...) -> None: ...

class ListVersionsResponse(_message.Message):
    __slots__ = ("versions",)
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[VersionInfo]
    def __init__(self, versions: _Optional[_Iterable[_Union[VersionInfo, _Mapping]]] = ...) -> None: ...

class GetVersionRequest(_message.Message):
    __slots__ = ("policy_set", "number")
    POLICY_SET_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    policy_set: str
    number: int
    def __init__(self, policy_set: _Optional[str] = ..., number: _Optional[int] = ...) -> None: ...

class GetVersionResponse(_message.Message):
    __slots__ = ("version", "content")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    version: VersionInfo
    content: BundleContent
    def __init__(self, version: _Optional[_Union[VersionInfo, _Mapping]] = ..., content: _Optional[_Union[BundleContent, _Mapping]] = ...) -> None: ...

class DiffVersionsRequest(_message.Message):
    __slots__ = ("policy_set", "from_number", "to_number")
    POLICY_SET_FIELD_NUMBER: _ClassVar[int]
    FROM_NUMBER_FIELD_NUMBER: _ClassVar[int]
    TO_NUMBER_FIELD_NUMBER: _ClassVar[int]
    policy_set: str
    from_number: int
    to_number: int
    def __init__(self, policy_set: _Optional[str] = ..., from_number: _Optional[int] = ..., to_number: _Optional[int] = ...) -> None: ...

class RuleChange(_message.Message):
    __slots__ = ("rule", "line")
    RULE_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    rule: str
    line: int
    def __init__(self, rule: _Optional[str] = ..., line: _Optional[int] = ...) -> None: ...

class DiffVersionsResponse(_message.Message):
    __slots__ = ("added", "removed", "model_diff", "tests_changed", "roles_diff")
    ADDED_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    MODEL_DIFF_FIELD_NUMBER: _ClassVar[int]
    TESTS_CHANGED_FIELD_NUMBER: _ClassVar[int]
    ROLES_DIFF_FIELD_NUMBER: _ClassVar[int]
    added: _containers.RepeatedCompositeFieldContainer[RuleChange]
    removed: _containers.RepeatedCompositeFieldContainer[RuleChange]
    model_diff: str
    tests_changed: _containers.RepeatedScalarFieldContainer[str]
    roles_diff: str
    def __init__(self, added: _Optional[_Iterable[_Union[RuleChange, _Mapping]]] = ..., removed: _Optional[_Iterable[_Union[RuleChange, _Mapping]]] = ..., model_diff: _Optional[str] = ..., tests_changed: _Optional[_Iterable[str]] = ..., roles_diff: _Optional[str] = ...) -> None: ...

class Activation(_message.Message):
    __slots__ = ("id", "policy_set", "version", "previous_version", "actor", "reason", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    POLICY_SET_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: int
    policy_set: str
    version: int
    previous_version: int
    actor: str
    reason: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[int] = ..., policy_set: _Optional[str] = ..., version: _Optional[int] = ..., previous_version: _Optional[int] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ActivateVersionRequest(_message.Message):
    __slots__ = ("policy_set", "number", "reason", "author", "expected_active_version", "expect_none_active")
    POLICY_SET_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_ACTIVE_VERSION_FIELD_NUMBER: _ClassVar[int]
    EXPECT_NONE_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    policy_set: str
    number: int
    reason: str
    author: str
    expected_active_version: int
    expect_none_active: bool
    def __init__(self, policy_set: _Optional[str] = ..., number: _Optional[int] = ..., reason: _Optional[str] = ..., author: _Optional[str] = ..., expected_active_version: _Optional[int] = ..., expect_none_active: _Optional[bool] = ...) -> None: ...

class ActivateVersionResponse(_message.Message):
    __slots__ = ("activation",)
    ACTIVATION_FIELD_NUMBER: _ClassVar[int]
    activation: Activation
    def __init__(self, activation: _Optional[_Union[Activation, _Mapping]] = ...) -> None: ...

class RollbackRequest(_message.Message):
    __slots__ = ("policy_set", "to_number", "reason", "author", "expected_active_version")
    POLICY_SET_FIELD_NUMBER: _ClassVar[int]
    TO_NUMBER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_ACTIVE_VERSION_FIELD_NUMBER: _ClassVar[int]
    policy_set: str
    to_number: int
    reason: str
    author: str
    expected_active_version: int
    def __init__(self, policy_set: _Optional[str] = ..., to_number: _Optional[int] = ..., reason: _Optional[str] = ..., author: _Optional[str] = ..., expected_active_version: _Optional[int] = ...) -> None: ...

class RollbackResponse(_message.Message):
    __slots__ = ("activation",)
    ACTIVATION_FIELD_NUMBER: _ClassVar[int]
    activation: Activation
    def __init__(self, activation: _Optional[_Union[Activation, _Mapping]] = ...) -> None: ...

class ListActivationsRequest(_message.Message):
    __slots__ = ("policy_set", "limit")
    POLICY_SET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    policy_set: str
    limit: int
    def __init__(self, policy_set: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListActivationsResponse(_message.Message):
    __slots__ = ("activations",)
    ACTIVATIONS_FIELD_NUMBER: _ClassVar[int]
    activations: _containers.RepeatedCompositeFieldContainer[Activation]
    def __init__(self, activations: _Optional[_Iterable[_Union[Activation, _Mapping]]] = ...) -> None: ...

class WatchActivationsRequest(_message.Message):
    __slots__ = ("policy_set", "since_id")
    POLICY_SET_FIELD_NUMBER: _ClassVar[int]
    SINCE_ID_FIELD_NUMBER: _ClassVar[int]
    policy_set: str
    since_id: int
    def __init__(self, policy_set: _Optional[str] = ..., since_id: _Optional[int] = ...) -> None: ...
