"""The SDK's pure parts: tool definitions, arguments, the bound identity, retry timing."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from policy_engine.client import Identity, Resource, RetryPolicy, ToolCallDenied, acting_as, current_identity, tool_name
from policy_engine.client.errors import InvalidArgument, ServerError, error_from_rpc
from policy_engine.client.tools import tool_arguments, tool_call_context


class TestToolName:
    @pytest.mark.parametrize(
        "tool",
        [
            {"type": "function", "function": {"name": "web_search", "parameters": {}}},
            {"type": "function", "name": "web_search", "parameters": {}},
            {"name": "web_search", "description": "d", "input_schema": {"type": "object"}},
        ],
    )
    def test_reads_openai_and_anthropic_shapes(self, tool: dict) -> None:  # type: ignore[type-arg]
        """OpenAI chat, OpenAI responses and Anthropic tool dicts all yield their name."""
        assert tool_name(tool) == "web_search"

    def test_refuses_a_dict_without_name(self) -> None:
        """A dict that is not a named tool definition is a ValueError, never silently passed through."""
        with pytest.raises(ValueError, match="keys"):
            tool_name({"type": "function", "function": {}})


class TestArguments:
    def test_json_string_and_dict(self) -> None:
        """Arguments as OpenAI's JSON string or Anthropic's dict become the same dict."""
        assert tool_arguments('{"q": 1}') == tool_arguments({"q": 1}) == {"q": 1}
        assert tool_arguments(None) == tool_arguments("") == {}

    def test_non_object_is_refused(self) -> None:
        """JSON that is not an object is refused."""
        with pytest.raises(ValueError):
            tool_arguments("[1, 2]")

    def test_context_gets_arguments_only_when_asked(self) -> None:
        """Arguments go into the context only with arguments_in_context; bad JSON is then a denial."""
        assert tool_call_context("t", '{"q": 1}', {"ip": "x"}, False) == {"ip": "x"}
        assert tool_call_context("t", '{"q": 1}', None, True) == {"arguments": {"q": 1}}
        with pytest.raises(ToolCallDenied):
            tool_call_context("t", "{", None, True)


class TestIdentity:
    def test_acting_as_nests_and_resets(self) -> None:
        """The innermost acting_as wins and the outer one is restored after the block."""
        assert current_identity() is None
        with acting_as(tenant="acme", subject="a") as outer:
            with acting_as(Identity("acme", "b")):
                assert current_identity().subject == "b"  # type: ignore[union-attr]
            assert current_identity() is outer
        assert current_identity() is None

    def test_identity_is_per_task(self) -> None:
        """Concurrent asyncio tasks each see their own identity."""

        async def task(name: str) -> str:
            with acting_as(tenant="acme", subject=name):
                await asyncio.sleep(0.01)
                return current_identity().subject  # type: ignore[union-attr]

        async def main() -> list[str]:
            return list(await asyncio.gather(task("a"), task("b")))

        assert asyncio.run(main()) == ["a", "b"]


class TestRetryPolicy:
    def test_only_unavailable_and_overload_are_retried(self) -> None:
        """Only UNAVAILABLE and RESOURCE_EXHAUSTED get a delay; other codes give up at once."""
        policy = RetryPolicy()
        assert policy.delay(0, grpc.StatusCode.UNAVAILABLE, 10) is not None
        assert policy.delay(0, grpc.StatusCode.RESOURCE_EXHAUSTED, 10) is not None
        for code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.INTERNAL):
            assert policy.delay(0, code, 10) is None

    def test_bounded_by_attempts_and_deadline(self) -> None:
        """No retry beyond max_attempts, and no wait that would pass the deadline; delays grow to the cap."""
        policy = RetryPolicy(max_attempts=3, initial_backoff=0.1, max_backoff=0.15)
        assert policy.delay(2, grpc.StatusCode.UNAVAILABLE, 10) is None
        assert policy.delay(0, grpc.StatusCode.UNAVAILABLE, 0.01) is None
        assert 0.05 <= policy.delay(1, grpc.StatusCode.UNAVAILABLE, 10) <= 0.15  # type: ignore[operator]

    def test_server_hint_is_a_floor_within_the_deadline(self) -> None:
        """A retry-after hint longer than the backoff is waited out; one past the deadline gives up."""
        policy = RetryPolicy(initial_backoff=0.01, max_backoff=0.02)
        assert policy.delay(0, grpc.StatusCode.RESOURCE_EXHAUSTED, 10, retry_after=0.5) == 0.5
        assert policy.delay(0, grpc.StatusCode.RESOURCE_EXHAUSTED, 0.4, retry_after=0.5) is None
        assert policy.delay(0, grpc.StatusCode.RESOURCE_EXHAUSTED, 10, retry_after=0.001) <= 0.02  # type: ignore[operator]


def test_errors_map_by_code() -> None:
    """A typed error keeps the code and details; unknown codes become ServerError."""
    error = error_from_rpc(InvalidArgument(grpc.StatusCode.INVALID_ARGUMENT, "tenant: is required"))
    assert isinstance(error, InvalidArgument) and error.details() == "tenant: is required"
    assert isinstance(ServerError(grpc.StatusCode.INTERNAL, "x"), grpc.RpcError)


def test_resource_parse() -> None:
    """ "kind:id" strings parse into Resources; a bare id has no kind; anything else is a
    TypeError that says what it got."""
    assert Resource.parse("data:finance/q1") == Resource("data", "finance/q1")
    assert Resource.parse("x").key == "x"
    with pytest.raises(TypeError, match=r"a resource is a Resource or a 'kind:id' string, not tuple \('tool', 'x'\)"):
        Resource.parse(("tool", "x"))  # type: ignore[arg-type]
