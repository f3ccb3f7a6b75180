from google.protobuf import struct_pb2 as _struct_pb2
from policy_engine.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CheckRequest(_message.Message):
    __slots__ = ("policy_set", "tenant", "subject", "subject_token", "actor", "action", "resource", "context", "min_version", "explain", "request_id")
    POLICY_SET_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    MIN_VERSION_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    policy_set: str
    tenant: str
    subject: _types_pb2.Entity
    subject_token: str
    actor: _types_pb2.Entity
    action: str
    resource: _types_pb2.Resource
    context: _struct_pb2.Struct
    min_version: int
    explain: bool
    request_id: str
    def __init__(self, policy_set: _Optional[str] = ..., tenant: _Optional[str] = ..., subject: _Optional[_Union[_types_pb2.Entity, _Mapping]] = ..., subject_token: _Optional[str] = ..., actor: _Optional[_Union[_types_pb2.Entity, _Mapping]] = ..., action: _Optional[str] = ..., resource: _Optional[_Union[_types_pb2.Resource, _Mapping]] = ..., context: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., min_version: _Optional[int] = ..., explain: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...

class CheckResponse(_message.Message):
    __slots__ = ("allowed", "policy_version", "decision_id", "reason", "matched_rules", "denied_party", "failure")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MATCHED_RULES_FIELD_NUMBER: _ClassVar[int]
    DENIED_PARTY_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    policy_version: int
    decision_id: str
    reason: str
    matched_rules: _containers.RepeatedCompositeFieldContainer[_types_pb2.MatchedRule]
    denied_party: str
    failure: _types_pb2.Failure
    def __init__(self, allowed: _Optional[bool] = ..., policy_version: _Optional[int] = ..., decision_id: _Optional[str] = ..., reason: _Optional[str] = ..., matched_rules: _Optional[_Iterable[_Union[_types_pb2.MatchedRule, _Mapping]]] = ..., denied_party: _Optional[str] = ..., failure: _Optional[_Union[_types_pb2.Failure, str]] = ...) -> None: ...

class BatchCheckItem(_message.Message):
    __slots__ = ("action", "resource", "context", "request_id")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    action: str
    resource: _types_pb2.Resource
    context: _struct_pb2.Struct
    request_id: str
    def __init__(self, action: _Optional[str] = ..., resource: _Optional[_Union[_types_pb2.Resource, _Mapping]] = ..., context: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class BatchCheckRequest(_message.Message):
    __slots__ = ("policy_set", "tenant", "subject", "subject_token", "actor", "items", "min_version", "explain", "request_id")
    POLICY_SET_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    MIN_VERSION_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    policy_set: str
    tenant: str
    subject: _types_pb2.Entity
    subject_token: str
    actor: _types_pb2.Entity
    items: _containers.RepeatedCompositeFieldContainer[BatchCheckItem]
    min_version: int
    explain: bool
    request_id: str
    def __init__(self, policy_set: _Optional[str] = ..., tenant: _Optional[str] = ..., subject: _Optional[_Union[_types_pb2.Entity, _Mapping]] = ..., subject_token: _Optional[str] = ..., actor: _Optional[_Union[_types_pb2.Entity, _Mapping]] = ..., items: _Optional[_Iterable[_Union[BatchCheckItem, _Mapping]]] = ..., min_version: _Optional[int] = ..., explain: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...

class BatchCheckResult(_message.Message):
    __slots__ = ("allowed", "reason", "decision_id", "error", "matched_rules", "denied_party", "failure")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    MATCHED_RULES_FIELD_NUMBER: _ClassVar[int]
    DENIED_PARTY_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    reason: str
    decision_id: str
    error: str
    matched_rules: _containers.RepeatedCompositeFieldContainer[_types_pb2.MatchedRule]
    denied_party: str
    failure: _types_pb2.Failure
    def __init__(self, allowed: _Optional[bool] = ..., reason: _Optional[str] = ..., decision_id: _Optional[str] = ..., error: _Optional[str] = ..., matched_rules: _Optional[_Iterable[_Union[_types_pb2.MatchedRule, _Mapping]]] = ..., denied_party: _Optional[str] = ..., failure: _Optional[_Union[_types_pb2.Failure, str]] = ...) -> None: ...

class BatchCheckResponse(_message.Message):
    __slots__ = ("policy_version", "results")
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    policy_version: int
    results: _containers.RepeatedCompositeFieldContainer[BatchCheckResult]
    def __init__(self, policy_version: _Optional[int] = ..., results: _Optional[_Iterable[_Union[BatchCheckResult, _Mapping]]] = ...) -> None: ...

class FilterAllowedRequest(_message.Message):
    __slots__ = ("policy_set", "tenant", "subject", "subject_token", "actor", "action", "candidates", "context", "explain", "min_version", "request_id")
    POLICY_SET_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    MIN_VERSION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    policy_set: str
    tenant: str
    subject: _types_pb2.Entity
    subject_token: str
    actor: _types_pb2.Entity
    action: str
    candidates: _containers.RepeatedCompositeFieldContainer[_types_pb2.Resource]
    context: _struct_pb2.Struct
    explain: bool
    min_version: int
    request_id: str
    def __init__(self, policy_set: _Optional[str] = ..., tenant: _Optional[str] = ..., subject: _Optional[_Union[_types_pb2.Entity, _Mapping]] = ..., subject_token: _Optional[str] = ..., actor: _Optional[_Union[_types_pb2.Entity, _Mapping]] = ..., action: _Optional[str] = ..., candidates: _Optional[_Iterable[_Union[_types_pb2.Resource, _Mapping]]] = ..., context: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., explain: _Optional[bool] = ..., min_version: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class Denial(_message.Message):
    __slots__ = ("resource", "reason", "index", "error", "denied_party", "failure", "matched_rules")
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DENIED_PARTY_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    MATCHED_RULES_FIELD_NUMBER: _ClassVar[int]
    resource: _types_pb2.Resource
    reason: str
    index: int
    error: str
    denied_party: str
    failure: _types_pb2.Failure
    matched_rules: _containers.RepeatedCompositeFieldContainer[_types_pb2.MatchedRule]
    def __init__(self, resource: _Optional[_Union[_types_pb2.Resource, _Mapping]] = ..., reason: _Optional[str] = ..., index: _Optional[int] = ..., error: _Optional[str] = ..., denied_party: _Optional[str] = ..., failure: _Optional[_Union[_types_pb2.Failure, str]] = ..., matched_rules: _Optional[_Iterable[_Union[_types_pb2.MatchedRule, _Mapping]]] = ...) -> None: ...

class FilterAllowedResponse(_message.Message):
    __slots__ = ("policy_version", "allowed", "denied", "allowed_indexes")
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    DENIED_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_INDEXES_FIELD_NUMBER: _ClassVar[int]
    policy_version: int
    allowed: _containers.RepeatedCompositeFieldContainer[_types_pb2.Resource]
    denied: _containers.RepeatedCompositeFieldContainer[Denial]
    allowed_indexes: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, policy_version: _Optional[int] = ..., allowed: _Optional[_Iterable[_Union[_types_pb2.Resource, _Mapping]]] = ..., denied: _Optional[_Iterable[_Union[Denial, _Mapping]]] = ..., allowed_indexes: _Optional[_Iterable[int]] = ...) -> None: ...

class ListAllowedRequest(_message.Message):
    __slots__ = ("policy_set", "tenant", "subject", "subject_token", "actor", "action", "kind", "context", "min_version", "request_id")
    POLICY_SET_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    MIN_VERSION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    policy_set: str
    tenant: str
    subject: _types_pb2.Entity
    subject_token: str
    actor: _types_pb2.Entity
    action: str
    kind: str
    context: _struct_pb2.Struct
    min_version: int
    request_id: str
    def __init__(self, policy_set: _Optional[str] = ..., tenant: _Optional[str] = ..., subject: _Optional[_Union[_types_pb2.Entity, _Mapping]] = ..., subject_token: _Optional[str] = ..., actor: _Optional[_Union[_types_pb2.Entity, _Mapping]] = ..., action: _Optional[str] = ..., kind: _Optional[str] = ..., context: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., min_version: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class ListAllowedResponse(_message.Message):
    __slots__ = ("policy_version", "resource_ids", "patterns", "partial", "partial_reasons")
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_IDS_FIELD_NUMBER: _ClassVar[int]
    PATTERNS_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_REASONS_FIELD_NUMBER: _ClassVar[int]
    policy_version: int
    resource_ids: _containers.RepeatedScalarFieldContainer[str]
    patterns: _containers.RepeatedScalarFieldContainer[str]
    partial: bool
    partial_reasons: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, policy_version: _Optional[int] = ..., resource_ids: _Optional[_Iterable[str]] = ..., patterns: _Optional[_Iterable[str]] = ..., partial: _Optional[bool] = ..., partial_reasons: _Optional[_Iterable[str]] = ...) -> None: ...
