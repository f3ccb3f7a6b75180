"""The Python SDK for backends: typed clients over the v1 gRPC contract.

- `SyncClient` / `AsyncClient`: check, batch_check, filter_allowed, list_allowed,
  and the LLM tool helpers filter_tools and guard_tool_call;
- `guarded_tool` + `acting_as`: guard the Python functions that implement tools;
- typed results (`CheckResult`, `BatchResult`, `FilterResult`, `ListResult`) and
  typed errors (`policy_engine.client.errors`).
"""

from policy_engine.client._core import DEFAULT_TIMEOUT, RetryPolicy, TLSConfig
from policy_engine.client.aio import AsyncClient
from policy_engine.client.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    PolicyEngineClientError,
    ResourceExhausted,
    ServerError,
    ToolCallDenied,
    Unauthenticated,
    Unavailable,
    Unimplemented,
)
from policy_engine.client.models import (
    BatchResult,
    CheckItem,
    CheckResult,
    Denial,
    FilterResult,
    Identity,
    ListResult,
    MatchedRuleInfo,
    Resource,
)
from policy_engine.client.sync import SyncClient
from policy_engine.client.tools import acting_as, current_identity, guarded_tool, tool_name

__all__ = [
    "DEFAULT_TIMEOUT",
    "AsyncClient",
    "BatchResult",
    "CheckItem",
    "CheckResult",
    "DeadlineExceeded",
    "Denial",
    "FailedPrecondition",
    "FilterResult",
    "Identity",
    "InvalidArgument",
    "ListResult",
    "MatchedRuleInfo",
    "NotFound",
    "PermissionDenied",
    "PolicyEngineClientError",
    "Resource",
    "ResourceExhausted",
    "RetryPolicy",
    "ServerError",
    "SyncClient",
    "TLSConfig",
    "ToolCallDenied",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "acting_as",
    "current_identity",
    "guarded_tool",
    "tool_name",
]
