"""Exceptions of the SDK, one per gRPC status a caller may want to handle on its own.

    grpc.RpcError
    └── PolicyEngineClientError     any failed call; .code() and .details() as grpc gives them
        ├── InvalidArgument         the request was refused; the message names the field
        ├── NotFound                an unknown policy set
        ├── FailedPrecondition      e.g. min_version is not loaded yet
        ├── PermissionDenied        the caller may not use this API
        ├── Unauthenticated         missing or bad credentials
        ├── Unavailable             the server cannot be reached (after the retries)
        ├── DeadlineExceeded        the call's deadline passed
        ├── Unimplemented           a feature this server does not offer (e.g. subject_token)
        ├── ResourceExhausted       a message or rate limit
        └── ServerError             INTERNAL, UNKNOWN and anything else

    ToolCallDenied                  the policy denied a tool call (not an RPC failure)

Every client error is a `grpc.RpcError`, so code written against the raw
stubs keeps working; new code catches the class it cares about.
"""

from __future__ import annotations

from typing import Any

import grpc

__all__ = [
    "DeadlineExceeded",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "PolicyEngineClientError",
    "ResourceExhausted",
    "ServerError",
    "ToolCallDenied",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "error_from_rpc",
]


class PolicyEngineClientError(grpc.RpcError):
    """A call to policy-engine failed; `status` is the grpc.StatusCode, `message` the server's details."""

    def __init__(self, status: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{status.name}: {message}")
        self.status = status
        self.message = message

    def code(self) -> grpc.StatusCode:
        return self.status

    def details(self) -> str:
        return self.message


class InvalidArgument(PolicyEngineClientError):
    """The request was refused as invalid; the message starts with the field."""


class NotFound(PolicyEngineClientError):
    """An unknown policy set (or version)."""


class FailedPrecondition(PolicyEngineClientError):
    """The server cannot answer as asked yet, e.g. `min_version` is not loaded."""


class PermissionDenied(PolicyEngineClientError):
    """The caller is not allowed to use this API."""


class Unauthenticated(PolicyEngineClientError):
    """Missing or invalid credentials."""


class Unavailable(PolicyEngineClientError):
    """The server could not be reached, after the retries the client makes for reads."""


class DeadlineExceeded(PolicyEngineClientError):
    """The call's deadline passed before an answer came."""


class Unimplemented(PolicyEngineClientError):
    """The server does not offer this feature (yet)."""


class ResourceExhausted(PolicyEngineClientError):
    """A size or rate limit was hit."""


class ServerError(PolicyEngineClientError):
    """The server failed (INTERNAL, UNKNOWN, DATA_LOSS, ...)."""


class ToolCallDenied(Exception):
    """The policy denied a tool call: `tool`, `reason` and the full `result` (a CheckResult)."""

    def __init__(self, tool: str, reason: str, result: Any = None) -> None:
        super().__init__(f"tool {tool!r} denied: {reason}")
        self.tool = tool
        self.reason = reason
        self.result = result


_BY_CODE: dict[grpc.StatusCode, type[PolicyEngineClientError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
}


def error_from_rpc(error: grpc.RpcError) -> PolicyEngineClientError:
    """The typed error for a failed grpc call (sync or aio)."""
    if isinstance(error, PolicyEngineClientError):
        return error
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = (error.details() if hasattr(error, "details") else None) or str(error)
    return _BY_CODE.get(code, ServerError)(code, details)
