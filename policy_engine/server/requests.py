"""A request body before it is parsed: its size limit per method, and what an undecodable one gets.

grpc parses a request before any interceptor sees it, with one size limit for every
method (the largest: a pushed bundle). `guarded_deserializer` wraps a method's parser:
a body above the method's own limit is not parsed, and a body that does not parse is
not an exception with a traceback each time; both become a `Refusal` that the
interceptor answers (RESOURCE_EXHAUSTED, INVALID_ARGUMENT naming the field), with one
log line per second at most and a counter.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc
from google.protobuf.message import DecodeError

from policy_engine import limits
from policy_engine.auth.tokens import MAX_TOKEN_BYTES
from policy_engine.metrics import METRICS
from policy_engine.v1 import admin_pb2, authorization_pb2

__all__ = ["Refusal", "RefusalLog", "guarded_deserializer", "max_request_bytes"]

log = logging.getLogger(__name__)

_AUTHZ = f"/{authorization_pb2.DESCRIPTOR.services_by_name['AuthorizationService'].full_name}/"
_ADMIN = f"/{admin_pb2.DESCRIPTOR.services_by_name['PolicyAdminService'].full_name}/"

# A Check carries at most four attribute Structs (subject, actor, resource, context), a
# subject token and a dozen ids, each bounded in limits.py; twice that leaves room for framing.
_CHECK_BYTES = 2 * (4 * limits.MAX_STRUCT_BYTES + MAX_TOKEN_BYTES + 16 * limits.MAX_ID_LENGTH)
# Batches are checked whole against MAX_BATCH_REQUEST_BYTES after parsing, with a message that
# names the size; the transport refuses what is far beyond it without parsing.
_BATCH_BYTES = 2 * limits.MAX_BATCH_REQUEST_BYTES
# Any other admin, health or reflection request: names, numbers and filters.
_SMALL_BYTES = 64 * 1024
_LIMITS = {
    _AUTHZ + "Check": _CHECK_BYTES,
    _AUTHZ + "BatchCheck": _BATCH_BYTES,
    _AUTHZ + "FilterAllowed": _BATCH_BYTES,
    _AUTHZ + "ListAllowed": _BATCH_BYTES,
    _ADMIN + "PushVersion": limits.MAX_MESSAGE_BYTES,
}


def max_request_bytes(method: str) -> int:
    """The largest request body `method` accepts."""
    return _LIMITS.get(method, _SMALL_BYTES)


@dataclass(frozen=True, slots=True)
class Refusal:
    """What a request body became when it was not parsed: the status to answer with."""

    code: grpc.StatusCode
    message: str

    async def abort(self, context: grpc.aio.ServicerContext) -> NoReturn:
        METRICS.refused.labels(code=self.code.name).inc()
        await context.abort(self.code, self.message)
        raise AssertionError("abort returns only by raising")  # pragma: no cover


class RefusalLog:
    """At most one log line per `interval` seconds; the lines in between are counted in the next."""

    def __init__(self, logger: logging.Logger, what: str, interval: float = 1.0) -> None:
        self._logger = logger
        self._what = what
        self._interval = interval
        self._lock = threading.Lock()
        self._last = float("-inf")
        self._suppressed = 0

    def note(self, detail: str) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last < self._interval:
                self._suppressed += 1
                return
            suppressed, self._suppressed, self._last = self._suppressed, 0, now
        more = f" (and {suppressed} more since the last line)" if suppressed else ""
        self._logger.warning("%s: %s%s", self._what, detail, more)


_undecodable_log = RefusalLog(log, "undecodable request")
_oversized_log = RefusalLog(log, "oversized request")


def guarded_deserializer(parse: Callable[[bytes], Any] | None, method: str) -> Callable[[bytes], Any] | None:
    """`parse` bounded by `method`'s size limit; undecodable bodies become a Refusal."""
    if parse is None:
        return None
    limit = max_request_bytes(method)
    message_class = getattr(parse, "__self__", None)
    descriptor = getattr(message_class, "DESCRIPTOR", None)

    def deserialize(data: bytes) -> Any:
        size = len(data)
        if size > limit:
            METRICS.undecodable.labels(reason="too_large").inc()
            _oversized_log.note(f"{method}: {size} bytes, more than {limit}")
            return Refusal(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"request is {size} bytes, more than the {limit} that {method.rsplit('/', 1)[-1]} accepts",
            )
        try:
            return parse(data)
        except (DecodeError, ValueError, RecursionError) as exc:
            METRICS.undecodable.labels(reason="malformed").inc()
            field = undecodable_field(descriptor, data) if descriptor is not None else None
            _undecodable_log.note(f"{method}: {size} bytes, {exc}")
            where = field or "request"
            return Refusal(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"{where}: does not decode as protobuf (malformed, or nested more deeply than "
                f"the {limits.MAX_NESTING_DEPTH} levels attributes may have)",
            )

    return deserialize


_WELL_KNOWN = "google.protobuf."
_MAX_FIELD_DEPTH = 6


def undecodable_field(descriptor: Any, data: bytes, prefix: str = "", depth: int = 0) -> str | None:
    """The dotted path of the field that does not decode in `data`, a message of `descriptor`,
    as deep as a sub-message still parses on its own; None when the body itself is broken
    (or when every field decodes on its own)."""
    from google.protobuf import message_factory

    position = 0
    end = len(data)
    try:
        while position < end:
            key, position = _varint(data, position)
            number, wire = key >> 3, key & 7
            if wire == 0:
                _, position = _varint(data, position)
            elif wire == 1:
                position += 8
            elif wire == 5:
                position += 4
            elif wire == 2:
                length, position = _varint(data, position)
                chunk = data[position : position + length]
                position += length
                field = descriptor.fields_by_number.get(number)
                if field is None or field.message_type is None:
                    continue
                path = f"{prefix}{field.name}"
                sub = field.message_type
                if field.message_type.GetOptions().map_entry:
                    sub = field.message_type.fields_by_name["value"].message_type
                    if sub is None:
                        continue
                    chunk = _map_value(chunk)
                try:
                    message_factory.GetMessageClass(sub).FromString(chunk)
                except (DecodeError, ValueError, RecursionError):
                    if sub.full_name.startswith(_WELL_KNOWN) or depth >= _MAX_FIELD_DEPTH:
                        return path
                    return undecodable_field(sub, chunk, f"{path}.", depth + 1) or path
            else:
                return prefix.rstrip(".") or None
    except IndexError:
        return prefix.rstrip(".") or None
    return prefix.rstrip(".") or None


def _map_value(entry: bytes) -> bytes:
    """The value bytes of a map entry (field 2), or the entry itself when it has none."""
    position = 0
    while position < len(entry):
        key, position = _varint(entry, position)
        if key & 7 != 2:
            return entry
        length, position = _varint(entry, position)
        if key >> 3 == 2:
            return entry[position : position + length]
        position += length
    return entry


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7
        if shift > 63:
            raise IndexError("varint too long")
