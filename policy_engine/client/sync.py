"""SyncClient: a blocking client over one long-lived channel, with typed results."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import struct_pb2

from policy_engine.v1 import authorization_pb2, authorization_pb2_grpc, types_pb2

__all__ = ["CheckResult", "MatchedRuleInfo", "SyncClient", "split_resource"]

DEFAULT_TIMEOUT = 2.0


@dataclass(frozen=True)
class MatchedRuleInfo:
    text: str
    file: str
    line: int


@dataclass(frozen=True)
class CheckResult:
    allowed: bool
    policy_version: int
    decision_id: str
    reason: str
    denied_party: str
    matched_rules: tuple[MatchedRuleInfo, ...]


class SyncClient:
    """Ask the decision service; one channel for the client's lifetime. Use as a context manager."""

    def __init__(self, target: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._channel = grpc.insecure_channel(target)
        self._stub = authorization_pb2_grpc.AuthorizationServiceStub(self._channel)
        self._timeout = timeout

    def check(
        self,
        *,
        tenant: str,
        subject: str,
        action: str,
        resource: str,
        subject_attributes: Mapping[str, Any] | None = None,
        resource_attributes: Mapping[str, Any] | None = None,
        actor: str | None = None,
        actor_attributes: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        policy_set: str = "",
        explain: bool = False,
        min_version: int = 0,
        timeout: float | None = None,
    ) -> CheckResult:
        """Decide one action. `resource` is "kind:id" (e.g. "tool:web_search")."""
        kind, resource_id = split_resource(resource)
        request = authorization_pb2.CheckRequest(
            policy_set=policy_set,
            tenant=tenant,
            subject=types_pb2.Entity(id=subject, attributes=_struct(subject_attributes)),
            action=action,
            resource=types_pb2.Resource(
                kind=kind, id=resource_id, attributes=_struct(resource_attributes)
            ),
            context=_struct(context),
            explain=explain,
            min_version=min_version,
        )
        if actor is not None:
            request.actor.CopyFrom(types_pb2.Entity(id=actor, attributes=_struct(actor_attributes)))
        response = self._stub.Check(request, timeout=timeout or self._timeout)
        return CheckResult(
            allowed=response.allowed,
            policy_version=response.policy_version,
            decision_id=response.decision_id,
            reason=response.reason,
            denied_party=response.denied_party,
            matched_rules=tuple(
                MatchedRuleInfo(rule.text, rule.file, rule.line) for rule in response.matched_rules
            ),
        )

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def split_resource(resource: str) -> tuple[str, str]:
    """ "tool:web_search" -> ("tool", "web_search"); a bare id has no kind."""
    kind, sep, resource_id = resource.partition(":")
    return (kind, resource_id) if sep else ("", resource)


def _struct(values: Mapping[str, Any] | None) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    if values:
        struct.update(dict(values))
    return struct
