from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Failure(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAILURE_UNSPECIFIED: _ClassVar[Failure]
    FAILURE_NO_ROLE: _ClassVar[Failure]
    FAILURE_NO_MATCHING_RULE: _ClassVar[Failure]
    FAILURE_DENY_RULE: _ClassVar[Failure]
    FAILURE_CONDITION: _ClassVar[Failure]
    FAILURE_ACTOR: _ClassVar[Failure]
    FAILURE_EVALUATION_ERROR: _ClassVar[Failure]
    FAILURE_INVALID: _ClassVar[Failure]
FAILURE_UNSPECIFIED: Failure
FAILURE_NO_ROLE: Failure
FAILURE_NO_MATCHING_RULE: Failure
FAILURE_DENY_RULE: Failure
FAILURE_CONDITION: Failure
FAILURE_ACTOR: Failure
FAILURE_EVALUATION_ERROR: Failure
FAILURE_INVALID: Failure

class Entity(_message.Message):
    __slots__ = ("id", "attributes")
    ID_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    id: str
    attributes: _struct_pb2.Struct
    def __init__(self, id: _Optional[str] = ..., attributes: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class Resource(_message.Message):
    __slots__ = ("kind", "id", "attributes")
    KIND_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    kind: str
    id: str
    attributes: _struct_pb2.Struct
    def __init__(self, kind: _Optional[str] = ..., id: _Optional[str] = ..., attributes: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class MatchedRule(_message.Message):
    __slots__ = ("text", "ptype", "values", "file", "line")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    PTYPE_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    text: str
    ptype: str
    values: _containers.RepeatedScalarFieldContainer[str]
    file: str
    line: int
    def __init__(self, text: _Optional[str] = ..., ptype: _Optional[str] = ..., values: _Optional[_Iterable[str]] = ..., file: _Optional[str] = ..., line: _Optional[int] = ...) -> None: ...
