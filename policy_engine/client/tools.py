"""LLM tool calling, the safe way: filter tool definitions per user, guard every call.

Works on plain dicts as the common SDKs use them:

- OpenAI Chat Completions: ``{"type": "function", "function": {"name": "web_search", ...}}``
- OpenAI Responses: ``{"type": "function", "name": "web_search", ...}``
- Anthropic: ``{"name": "web_search", "description": ..., "input_schema": {...}}``

::

    tools = client.filter_tools(ALL_TOOLS, tenant="acme", subject=user.id,
                                subject_attributes={"mfa": user.mfa}, actor="agent:helper")
    # ... the model only ever sees `tools`; then, for each tool call it makes:
    client.guard_tool_call(call.name, call.arguments, tenant="acme", subject=user.id,
                           actor="agent:helper")        # raises ToolCallDenied

and, for the Python functions that implement tools::

    @guarded_tool(client)
    def web_search(query: str) -> str: ...

    with acting_as(tenant="acme", subject=user.id, actor="agent:helper"):
        web_search(query="...")                         # checked first; ToolCallDenied if not allowed

A guarded tool called outside `acting_as` is denied: there is nobody to decide for.

Tool names go to the service as written, MCP-style `getWeather` included: it compares
them as the policy set declares (case-folded by default, so `GetWeather` is denied by a
deny on `getweather`), and `filter_tools` returns the caller's own definitions. A name
with invisible or look-alike characters is refused by the service, so it is never offered.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from policy_engine.client.errors import ToolCallDenied
from policy_engine.client.models import Identity

__all__ = [
    "acting_as",
    "current_identity",
    "guarded_tool",
    "tool_arguments",
    "tool_call_context",
    "tool_name",
]

F = TypeVar("F", bound=Callable[..., Any])
_IDENTITY: contextvars.ContextVar[Identity | None] = contextvars.ContextVar(
    "policy_engine_identity", default=None
)


def tool_name(tool: Mapping[str, Any]) -> str:
    """The name of an OpenAI- or Anthropic-style tool definition; ValueError for anything else."""
    function = tool.get("function")
    if isinstance(function, Mapping) and isinstance(function.get("name"), str):
        return function["name"]
    name = tool.get("name")
    if isinstance(name, str) and name:
        return name
    raise ValueError(f"not a tool definition with a name: keys {sorted(tool)}")


def tool_arguments(arguments: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """A tool call's arguments as a dict: OpenAI sends a JSON string, Anthropic a dict."""
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, str):
        parsed = json.loads(arguments)
        if not isinstance(parsed, dict):
            raise ValueError("tool call arguments are not a JSON object")
        return parsed
    return dict(arguments)


def tool_call_context(
    name: str,
    arguments: str | Mapping[str, Any] | None,
    context: Mapping[str, Any] | None,
    arguments_in_context: bool,
) -> dict[str, Any]:
    """The context of a guarded tool call: `context`, plus `arguments` when asked for."""
    merged = dict(context or {})
    if arguments_in_context:
        try:
            merged["arguments"] = tool_arguments(arguments)
        except ValueError as exc:
            raise ToolCallDenied(name, f"arguments are not a JSON object: {exc}") from exc
    return merged


@contextmanager
def acting_as(identity: Identity | None = None, /, **fields: Any) -> Iterator[Identity]:
    """Bind who is acting (an Identity, or its fields) for guarded tools called in this block."""
    bound = identity if identity is not None else Identity(**fields)
    token = _IDENTITY.set(bound)
    try:
        yield bound
    finally:
        _IDENTITY.reset(token)


def current_identity() -> Identity | None:
    """The identity bound by the innermost `acting_as`, if any."""
    return _IDENTITY.get()


def guarded_tool(
    client: Any,
    name: str | None = None,
    *,
    action: str = "invoke",
    kind: str = "tool",
    arguments_in_context: bool = False,
) -> Callable[[F], F]:
    """Decorate the function implementing a tool: each call is decided first, as `name`.

    With a SyncClient the function must be a plain function; with an
    AsyncClient, a coroutine function. Keyword arguments are what the tool
    receives (and, with `arguments_in_context`, what policies see as r.ctx.arguments).
    """
    client_is_async = inspect.iscoroutinefunction(client.guard_tool_call)

    def decorate(function: F) -> F:
        tool = name or function.__name__
        if inspect.iscoroutinefunction(function) != client_is_async:
            kind_of_client = "an AsyncClient" if client_is_async else "a SyncClient"
            raise TypeError(f"{tool}: {kind_of_client} guards {'async' if client_is_async else 'plain'} functions")

        def identity() -> Identity:
            bound = _IDENTITY.get()
            if bound is None:
                raise ToolCallDenied(tool, "no identity is bound: call the tool inside acting_as(...)")
            return bound

        options = {"action": action, "kind": kind, "arguments_in_context": arguments_in_context}
        if client_is_async:

            @functools.wraps(function)
            async def guarded_async(*args: Any, **kwargs: Any) -> Any:
                await client.guard_tool_call(tool, kwargs, **identity().as_kwargs(), **options)
                return await function(*args, **kwargs)

            return guarded_async  # type: ignore[return-value]

        @functools.wraps(function)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            client.guard_tool_call(tool, kwargs, **identity().as_kwargs(), **options)
            return function(*args, **kwargs)

        return guarded  # type: ignore[return-value]

    return decorate
