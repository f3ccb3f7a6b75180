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
    __slots__ = ("allowed", "policy_version", "decision_id", "reason", "matched_rules", "denied_party")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MATCHED_RULES_FIELD_NUMBER: _ClassVar[int]
    DENIED_PARTY_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    policy_version: int
    decision_id: str
    reason: str
    matched_rules: _containers.RepeatedCompositeFieldContainer[_types_pb2.MatchedRule]
    denied_party: str
    def __init__(self, allowed: _Optional[bool] = ..., policy_version: _Optional[int] = ..., decision_id: _Optional[str] = ..., reason: _Optional[str] = ..., matched_rules: _Optional[_Iterable[_Union[_types_pb2.MatchedRule, _Mapping]]] = ..., denied_party: _Optional[str] = ...) -> None: ...
