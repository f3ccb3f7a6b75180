"""SyncClient: a blocking client over one long-lived channel, with typed results.

    with SyncClient("127.0.0.1:50051") as client:
        result = client.check(tenant="acme", subject="dave", action="invoke",
                              resource="tool:web_search")

Every call has a deadline (`timeout`, default 2 s for the whole call, retries
included); every AuthorizationService call is a read, retried on UNAVAILABLE
only (see RetryPolicy). Failures raise the typed errors of
`policy_engine.client.errors`, which are also `grpc.RpcError`s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import grpc

from policy_engine.client import _core
from policy_engine.client._core import DEFAULT_TIMEOUT, RetryPolicy, TLSConfig, TokenSource, Who
from policy_engine.client.errors import InvalidArgument, ToolCallDenied, error_from_rpc
from policy_engine.client.models import (
    BatchResult,
    CheckItem,
    CheckResult,
    FilterResult,
    ListResult,
    MatchedRuleInfo,
    Resource,
)
from policy_engine.client.tools import tool_call_context, tool_name
from policy_engine.v1 import authorization_pb2_grpc

__all__ = ["CheckResult", "MatchedRuleInfo", "SyncClient", "split_resource"]

T = TypeVar("T")


class SyncClient:
    """Ask the decision service; one channel for the client's lifetime. Use as a context manager.

    target   "host:port"
    timeout  default deadline of each call in seconds (retries included)
    tls      TLSConfig for a TLS (or mTLS) channel; None: plaintext, for loopback and tests
    token    a bearer token, or a function returning one, sent as `authorization: Bearer ...`
    retry    RetryPolicy for UNAVAILABLE and RESOURCE_EXHAUSTED; RetryPolicy(max_attempts=1) disables retries
    """

    def __init__(
        self,
        target: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        tls: TLSConfig | None = None,
        token: TokenSource = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        options = _core.channel_options(tls)
        if tls is not None:
            self._channel = grpc.secure_channel(target, tls.credentials(), options=options)
        else:
            self._channel = grpc.insecure_channel(target, options=options)
        self._stub = authorization_pb2_grpc.AuthorizationServiceStub(self._channel)
        self._timeout = timeout
        self._token = token
        self._retry = retry or RetryPolicy()

    # ---- decisions ----

    def check(
        self,
        *,
        tenant: str,
        subject: str,
        action: str,
        resource: str | Resource,
        subject_attributes: Mapping[str, Any] | None = None,
        resource_attributes: Mapping[str, Any] | None = None,
        actor: str | None = None,
        actor_attributes: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        policy_set: str = "",
        explain: bool = False,
        min_version: int = 0,
        timeout: float | None = None,
        request_id: str = "",
    ) -> CheckResult:
        """Decide one action. `resource` is "kind:id" (e.g. "tool:web_search") or a Resource."""
        who = Who(tenant, subject, subject_attributes, actor, actor_attributes, policy_set)
        request = _core.check_request(
            who, action, resource, resource_attributes, context, explain, min_version, request_id
        )
        return _core.check_result(self._call(self._stub.Check, request, timeout))

    def batch_check(
        self,
        items: Iterable[CheckItem | tuple[str, Resource | str]],
        *,
        tenant: str,
        subject: str,
        subject_attributes: Mapping[str, Any] | None = None,
        actor: str | None = None,
        actor_attributes: Mapping[str, Any] | None = None,
        policy_set: str = "",
        explain: bool = False,
        min_version: int = 0,
        timeout: float | None = None,
    ) -> BatchResult:
        """Decide up to 1,000 actions of one subject at once, by one policy version, in order.

        An invalid item comes back denied with its `error`; it does not fail the batch.
        """
        who = Who(tenant, subject, subject_attributes, actor, actor_attributes, policy_set)
        request = _core.batch_request(who, items, explain, min_version)
        return _core.batch_result(self._call(self._stub.BatchCheck, request, timeout))

    def filter_allowed(
        self,
        candidates: Iterable[Resource | str],
        *,
        tenant: str,
        subject: str,
        action: str,
        subject_attributes: Mapping[str, Any] | None = None,
        actor: str | None = None,
        actor_attributes: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        policy_set: str = "",
        explain: bool = False,
        min_version: int = 0,
        timeout: float | None = None,
    ) -> FilterResult:
        """The candidates (up to 1,000) the subject may `action`, in order, and why the others not."""
        who = Who(tenant, subject, subject_attributes, actor, actor_attributes, policy_set)
        request = _core.filter_request(who, action, candidates, context, explain, min_version)
        return _core.filter_result(self._call(self._stub.FilterAllowed, request, timeout))

    def list_allowed(
        self,
        *,
        tenant: str,
        subject: str,
        action: str,
        kind: str,
        subject_attributes: Mapping[str, Any] | None = None,
        actor: str | None = None,
        actor_attributes: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        policy_set: str = "",
        min_version: int = 0,
        timeout: float | None = None,
    ) -> ListResult:
        """Resource ids and prefix patterns of `kind` the policy allows, for a retriever's filter."""
        who = Who(tenant, subject, subject_attributes, actor, actor_attributes, policy_set)
        request = _core.list_request(who, action, kind, context, min_version)
        return _core.list_result(kind, self._call(self._stub.ListAllowed, request, timeout))

    # ---- LLM tool calling ----

    def filter_tools(
        self,
        tools: Sequence[Mapping[str, Any]],
        *,
        tenant: str,
        subject: str,
        subject_attributes: Mapping[str, Any] | None = None,
        actor: str | None = None,
        actor_attributes: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        policy_set: str = "",
        action: str = "invoke",
        kind: str = "tool",
        timeout: float | None = None,
    ) -> list[Mapping[str, Any]]:
        """The tool definitions (OpenAI or Anthropic dicts) this user may invoke, in order, as given."""
        if not tools:
            return []
        names = [tool_name(tool) for tool in tools]
        result = self.filter_allowed(
            [Resource(kind, name) for name in names],
            tenant=tenant,
            subject=subject,
            action=action,
            subject_attributes=subject_attributes,
            actor=actor,
            actor_attributes=actor_attributes,
            context=context,
            policy_set=policy_set,
            timeout=timeout,
        )
        return [tools[index] for index in result.allowed_indexes]

    def guard_tool_call(
        self,
        name: str,
        arguments: str | Mapping[str, Any] | None = None,
        *,
        tenant: str,
        subject: str,
        subject_attributes: Mapping[str, Any] | None = None,
        actor: str | None = None,
        actor_attributes: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        policy_set: str = "",
        action: str = "invoke",
        kind: str = "tool",
        arguments_in_context: bool = False,
        timeout: float | None = None,
    ) -> CheckResult:
        """Decide a tool call the model made; raise ToolCallDenied (with the reason) unless allowed.

        A tool name the service refuses as invalid is a denial too. With
        `arguments_in_context`, the arguments are sent as context `arguments`.
        """
        call_context = tool_call_context(name, arguments, context, arguments_in_context)
        try:
            result = self.check(
                tenant=tenant,
                subject=subject,
                action=action,
                resource=Resource(kind, name),
                subject_attributes=subject_attributes,
                actor=actor,
                actor_attributes=actor_attributes,
                context=call_context,
                policy_set=policy_set,
                timeout=timeout,
            )
        except InvalidArgument as exc:
            raise ToolCallDenied(name, f"invalid request: {exc.details()}") from exc
        if not result.allowed:
            raise ToolCallDenied(name, result.reason, result)
        return result

    # ---- plumbing ----

    def _call(self, method: Callable[..., T], request: Any, timeout: float | None) -> T:
        deadline = time.monotonic() + (timeout or self._timeout)
        attempt = 0
        while True:
            remaining = max(deadline - time.monotonic(), 0.001)
            try:
                return method(
                    request, timeout=remaining, metadata=_core.call_metadata(self._token, remaining)
                )
            except grpc.RpcError as exc:
                delay = self._retry.delay(
                    attempt, exc.code(), deadline - time.monotonic(), _core.retry_after(exc)
                )
                if delay is None:
                    raise error_from_rpc(exc) from None
            time.sleep(delay)
            attempt += 1

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def split_resource(resource: str) -> tuple[str, str]:
    """ "tool:web_search" -> ("tool", "web_search"); a bare id has no kind."""
    parsed = Resource.parse(resource)
    return parsed.kind, parsed.id

