"""What SyncClient and AsyncClient share: configuration, retry timing, requests and results.

The two clients differ only in how they wait; everything that builds a
request or reads a response lives here once.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format, struct_pb2

from policy_engine.client.models import (
    BatchResult,
    CheckItem,
    CheckResult,
    Denial,
    FilterResult,
    ListResult,
    MatchedRuleInfo,
    Resource,
)
from policy_engine.v1 import authorization_pb2, types_pb2

__all__ = ["DEFAULT_TIMEOUT", "RetryPolicy", "TLSConfig", "retry_after"]

DEFAULT_TIMEOUT = 2.0
TokenSource = str | Callable[[], str] | None

# Reconnect quickly after a server restart: gRPC's default backoff grows to minutes.
CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
)


@dataclass(frozen=True)
class TLSConfig:
    """TLS for the channel: CA roots (None: the system's), and a client certificate for mTLS."""

    root_certificates: bytes | None = None
    certificate_chain: bytes | None = None
    private_key: bytes | None = None
    server_name: str | None = None

    @classmethod
    def from_files(
        cls,
        ca: str | Path | None = None,
        cert: str | Path | None = None,
        key: str | Path | None = None,
        server_name: str | None = None,
    ) -> TLSConfig:
        def read(path: str | Path | None) -> bytes | None:
            return Path(path).read_bytes() if path is not None else None

        return cls(read(ca), read(cert), read(key), server_name)

    def credentials(self) -> grpc.ChannelCredentials:
        if (self.certificate_chain is None) != (self.private_key is None):
            raise ValueError("TLSConfig: certificate_chain and private_key go together")
        return grpc.ssl_channel_credentials(
            root_certificates=self.root_certificates,
            private_key=self.private_key,
            certificate_chain=self.certificate_chain,
        )

    def options(self) -> tuple[tuple[str, Any], ...]:
        return (("grpc.ssl_target_name_override", self.server_name),) if self.server_name else ()


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of reads (every AuthorizationService call) within the deadline: on UNAVAILABLE
    (the server is away) and RESOURCE_EXHAUSTED (overloaded or rate limited).

    Attempt n (from 0) waits `initial_backoff * multiplier**n`, capped at
    `max_backoff`, with jitter down to half of it, and never past the deadline. A
    `retry-after-ms` hint from the server is a floor on the wait: an error whose hint
    reaches past the deadline is raised at once.
    """

    max_attempts: int = 4
    initial_backoff: float = 0.05
    max_backoff: float = 1.0
    multiplier: float = 2.0
    retryable: frozenset[grpc.StatusCode] = frozenset(
        {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED}
    )

    def delay(
        self, attempt: int, code: grpc.StatusCode, remaining: float, retry_after: float | None = None
    ) -> float | None:
        """Seconds to wait before attempt `attempt + 1`, or None to give up with this error."""
        if code not in self.retryable or attempt + 1 >= self.max_attempts:
            return None
        delay = min(self.max_backoff, self.initial_backoff * self.multiplier**attempt)
        delay *= random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not security
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay if delay < remaining else None


def retry_after(error: grpc.RpcError) -> float | None:
    """The server's `retry-after-ms` hint of a failed call, in seconds, if it gave one."""
    trailing = getattr(error, "trailing_metadata", None)
    for key, value in (trailing() if callable(trailing) else None) or ():
        if key == "retry-after-ms":
            try:
                return max(0.0, float(value) / 1000)
            except (TypeError, ValueError):
                return None
    return None


NO_RETRIES = RetryPolicy(max_attempts=1)


def channel_options(tls: TLSConfig | None) -> list[tuple[str, Any]]:
    return [*CHANNEL_OPTIONS, *(tls.options() if tls else ())]


# The timeout an attempt is sent with, in ms: grpc tells the server only the deadline, and
# with both the server can tell how long the call queued before it could take it, and
# refuse a call that waited past its latency budget (policy_engine/server/admission.py).
TIMEOUT_HEADER = "x-timeout-ms"


def call_metadata(token: TokenSource, timeout: float | None = None) -> tuple[tuple[str, str], ...] | None:
    metadata: tuple[tuple[str, str], ...] = ()
    if token is not None:
        value = token() if callable(token) else token
        metadata = (("authorization", f"Bearer {value}"),)
    if timeout is not None:
        metadata += ((TIMEOUT_HEADER, str(int(timeout * 1000))),)
    return metadata or None


# ---- requests ----


def struct(values: Mapping[str, Any] | None) -> struct_pb2.Struct | None:
    """`values` as a Struct; None (the field left unset) when there are none, which the server
    reads as an empty one, without parsing an empty message."""
    if not values:
        return None
    message = struct_pb2.Struct()
    message.update(dict(values))
    return message


def entity(entity_id: str, attributes: Mapping[str, Any] | None) -> types_pb2.Entity:
    return types_pb2.Entity(id=entity_id, attributes=struct(attributes))


def resource_message(value: Resource | str, attributes: Mapping[str, Any] | None = None) -> types_pb2.Resource:
    parsed = Resource.parse(value, attributes)
    return types_pb2.Resource(kind=parsed.kind, id=parsed.id, attributes=struct(parsed.attributes))


@dataclass(frozen=True)
class Who:
    """The shared part of every request: policy set, tenant, subject and actor."""

    tenant: str
    subject: str
    subject_attributes: Mapping[str, Any] | None = None
    actor: str | None = None
    actor_attributes: Mapping[str, Any] | None = None
    policy_set: str = ""

    def fill(self, request: Any) -> Any:
        request.policy_set = self.policy_set
        request.tenant = self.tenant
        request.subject.CopyFrom(entity(self.subject, self.subject_attributes))
        if self.actor is not None:
            request.actor.CopyFrom(entity(self.actor, self.actor_attributes))
        return request


def check_request(
    who: Who,
    action: str,
    resource: Resource | str,
    resource_attributes: Mapping[str, Any] | None,
    context: Mapping[str, Any] | None,
    explain: bool,
    min_version: int,
    request_id: str,
) -> authorization_pb2.CheckRequest:
    request = authorization_pb2.CheckRequest(
        action=action,
        resource=resource_message(resource, resource_attributes),
        context=struct(context),
        explain=explain,
        min_version=min_version,
        request_id=request_id,
    )
    return who.fill(request)


def batch_request(
    who: Who, items: Iterable[CheckItem | tuple[str, Resource | str]], explain: bool, min_version: int
) -> authorization_pb2.BatchCheckRequest:
    request = authorization_pb2.BatchCheckRequest(explain=explain, min_version=min_version)
    for item in items:
        if not isinstance(item, CheckItem):
            item = CheckItem(*item)
        request.items.append(
            authorization_pb2.BatchCheckItem(
                action=item.action,
                resource=resource_message(item.resource),
                context=struct(item.context),
                request_id=item.request_id,
            )
        )
    return who.fill(request)


def filter_request(
    who: Who,
    action: str,
    candidates: Iterable[Resource | str],
    context: Mapping[str, Any] | None,
    explain: bool,
    min_version: int,
) -> authorization_pb2.FilterAllowedRequest:
    request = authorization_pb2.FilterAllowedRequest(
        action=action,
        candidates=[resource_message(candidate) for candidate in candidates],
        context=struct(context),
        explain=explain,
        min_version=min_version,
    )
    return who.fill(request)


def list_request(
    who: Who, action: str, kind: str, context: Mapping[str, Any] | None, min_version: int
) -> authorization_pb2.ListAllowedRequest:
    request = authorization_pb2.ListAllowedRequest(
        action=action, kind=kind, context=struct(context), min_version=min_version
    )
    return who.fill(request)


# ---- results ----


def _failure(value: int) -> str:
    name = types_pb2.Failure.Name(value)
    return "" if value == types_pb2.FAILURE_UNSPECIFIED else name.removeprefix("FAILURE_").lower()


def _rules(rules: Sequence[types_pb2.MatchedRule]) -> tuple[MatchedRuleInfo, ...]:
    return tuple(
        MatchedRuleInfo(rule.text, rule.file, rule.line, rule.ptype, tuple(rule.values))
        for rule in rules
    )


def _resource(message: types_pb2.Resource) -> Resource:
    return Resource(message.kind, message.id, json_format.MessageToDict(message.attributes))


def check_result(response: authorization_pb2.CheckResponse) -> CheckResult:
    return CheckResult(
        allowed=response.allowed,
        policy_version=response.policy_version,
        decision_id=response.decision_id,
        reason=response.reason,
        denied_party=response.denied_party,
        matched_rules=_rules(response.matched_rules),
        failure=_failure(response.failure),
    )


def batch_result(response: authorization_pb2.BatchCheckResponse) -> BatchResult:
    return BatchResult(
        policy_version=response.policy_version,
        results=tuple(
            CheckResult(
                allowed=result.allowed,
                policy_version=response.policy_version,
                decision_id=result.decision_id,
                reason=result.reason,
                denied_party=result.denied_party,
                matched_rules=_rules(result.matched_rules),
                failure=_failure(result.failure),
                error=result.error,
            )
            for result in response.results
        ),
    )


def filter_result(response: authorization_pb2.FilterAllowedResponse) -> FilterResult:
    return FilterResult(
        policy_version=response.policy_version,
        allowed=tuple(_resource(resource) for resource in response.allowed),
        denied=tuple(
            Denial(
                resource=_resource(denial.resource),
                reason=denial.reason,
                index=denial.index,
                error=denial.error,
                denied_party=denial.denied_party,
                failure=_failure(denial.failure),
                matched_rules=_rules(denial.matched_rules),
            )
            for denial in response.denied
        ),
        allowed_indexes=tuple(response.allowed_indexes),
    )


def list_result(kind: str, response: authorization_pb2.ListAllowedResponse) -> ListResult:
    return ListResult(
        policy_version=response.policy_version,
        kind=kind,
        resource_ids=tuple(response.resource_ids),
        patterns=tuple(response.patterns),
        partial=response.partial,
        partial_reasons=tuple(response.partial_reasons),
    )
