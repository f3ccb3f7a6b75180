"""The Python SDK against real servers: typed results and errors, tool helpers, retries, deadlines, TLS, tokens."""

from __future__ import annotations

import asyncio
import subprocess
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from policy_engine.client import (
    AsyncClient,
    BatchResult,
    CheckItem,
    CheckResult,
    FailedPrecondition,
    DeadlineExceeded,
    FilterResult,
    InvalidArgument,
    ListResult,
    NotFound,
    PolicyEngineClientError,
    Resource,
    RetryPolicy,
    SyncClient,
    TLSConfig,
    ToolCallDenied,
    Unavailable,
    Unimplemented,
    acting_as,
    guarded_tool,
)
from tests.support.edge import EXPLAINING_LOCAL_CALLERS
from policy_engine.testing import ServerHandle, running_server
from policy_engine.v1 import authorization_pb2, authorization_pb2_grpc
from tests.support.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"
OPENAI_TOOLS = [
    {"type": "function", "function": {"name": "web_search", "parameters": {}}},
    {"type": "function", "function": {"name": "shell_exec", "parameters": {}}},
    {"type": "function", "function": {"name": "sql_query", "parameters": {}}},
]
ANTHROPIC_TOOLS = [
    {"name": "sql_query", "description": "SQL", "input_schema": {"type": "object"}},
    {"name": "payments_transfer", "description": "pay", "input_schema": {"type": "object"}},
    {"name": "web_search", "description": "search", "input_schema": {"type": "object"}},
]
CAROL = {"tenant": "acme", "subject": "carol", "subject_attributes": {"mfa": True, "clearance": 2}}


@pytest.fixture(scope="module")
def server() -> Iterator[ServerHandle]:
    with running_server(POLICIES, edge=EXPLAINING_LOCAL_CALLERS) as handle:
        yield handle


@pytest.fixture(scope="module")
def client(server: ServerHandle) -> Iterator[SyncClient]:
    with SyncClient(server.target) as sdk:
        yield sdk


class TestTypedResults:
    def test_check_returns_a_dataclass(self, client: SyncClient) -> None:
        """check returns a CheckResult with the version, reason and, with explain, the rule's file and line."""
        result = client.check(tenant="acme", subject="dave", action="invoke", resource="tool:web_search", explain=True)
        assert isinstance(result, CheckResult) and result.allowed and result.policy_version == 1
        assert result.matched_rules[0].file == "policy.csv" and result.matched_rules[0].line > 0

    def test_batch_check_in_order_with_item_errors(self, client: SyncClient) -> None:
        """batch_check returns one CheckResult per item, in order; an invalid item carries its error."""
        result = client.batch_check(
            [("invoke", "tool:web_search"), CheckItem("invoke", Resource("tool", "a/../b")), ("invoke", "tool:sql_query")],
            **CAROL,
        )
        assert isinstance(result, BatchResult) and len(result) == 3
        assert [r.allowed for r in result] == [True, False, True]
        assert result[1].error.startswith("items[1].resource.id") and result[1].failure == "invalid"

    def test_filter_allowed_and_list_allowed(self, client: SyncClient) -> None:
        """filter_allowed keeps order and explains denials; list_allowed gives ids, prefixes and covers()."""
        filtered = client.filter_allowed(
            ["tool:shell_exec", "tool:web_search"], tenant="acme", subject="dave", action="invoke", explain=True
        )
        assert isinstance(filtered, FilterResult)
        assert filtered.allowed == (Resource("tool", "web_search"),)
        assert filtered.denied[0].index == 0 and filtered.denied[0].failure == "no_matching_rule"
        listing = client.list_allowed(tenant="acme", subject="dave", action="read", kind="data")
        assert isinstance(listing, ListResult)
        assert listing.prefixes == ("data:public/",)
        assert listing.covers("public/handbook") and not listing.covers("finance/reports")

    def test_errors_are_typed_and_still_rpc_errors(self, client: SyncClient) -> None:
        """Refusals raise InvalidArgument, NotFound or Unimplemented, which are also grpc.RpcError."""
        with pytest.raises(InvalidArgument) as invalid:
            client.check(tenant="", subject="dave", action="invoke", resource="tool:web_search")
        assert isinstance(invalid.value, grpc.RpcError)
        assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert invalid.value.details().startswith("tenant")
        with pytest.raises(NotFound):
            client.check(tenant="acme", subject="dave", action="invoke", resource="tool:x", policy_set="nope")
        request = authorization_pb2.CheckRequest(subject_token="t")
        with pytest.raises(Unimplemented):
            client._call(client._stub.Check, request, None)  # noqa: SLF001 - the raw request shape

    def test_async_client_has_the_same_api(self, server: ServerHandle) -> None:
        """AsyncClient answers check, batch_check, filter_allowed and list_allowed like SyncClient."""

        async def main() -> tuple[object, ...]:
            async with AsyncClient(server.target) as sdk:
                return await asyncio.gather(
                    sdk.check(tenant="acme", subject="dave", action="invoke", resource="tool:web_search"),
                    sdk.batch_check([("invoke", "tool:web_search"), ("invoke", "tool:shell_exec")], tenant="acme", subject="dave"),
                    sdk.filter_allowed(["tool:sql_query"], tenant="acme", subject="dave", action="invoke"),
                    sdk.list_allowed(tenant="acme", subject="dave", action="write", kind="memory"),
                )

        check, batch, filtered, listing = asyncio.run(main())
        assert check.allowed  # type: ignore[attr-defined]
        assert [r.allowed for r in batch] == [True, False]  # type: ignore[attr-defined]
        assert filtered.allowed == ()  # type: ignore[attr-defined]
        assert listing.patterns == ("memory:session/*",)  # type: ignore[attr-defined]


class TestToolHelpers:
    def test_filter_tools_openai_and_anthropic(self, client: SyncClient) -> None:
        """filter_tools returns the allowed tool dicts themselves, in order, for both SDK shapes."""
        openai = client.filter_tools(OPENAI_TOOLS, **CAROL)
        anthropic = client.filter_tools(ANTHROPIC_TOOLS, **CAROL)
        assert openai == [OPENAI_TOOLS[0], OPENAI_TOOLS[2]] and openai[0] is OPENAI_TOOLS[0]
        assert [tool["name"] for tool in anthropic] == ["sql_query", "web_search"]
        assert client.filter_tools([], **CAROL) == []

    def test_filter_tools_with_an_actor(self, client: SyncClient) -> None:
        """Through an agent, only tools both the user and the agent may use remain."""
        tools = client.filter_tools(OPENAI_TOOLS, actor="agent:helper", **CAROL)
        assert [tool["function"]["name"] for tool in tools] == ["web_search"]

    def test_guard_tool_call_raises_with_reason(self, client: SyncClient) -> None:
        """A denied tool call raises ToolCallDenied naming the tool and why; an allowed one returns its decision."""
        assert client.guard_tool_call("web_search", '{"q": "x"}', **CAROL).allowed
        with pytest.raises(ToolCallDenied) as denied:
            client.guard_tool_call("shell_exec", {"cmd": "ls"}, **CAROL)
        assert denied.value.tool == "shell_exec" and "carol" in denied.value.reason
        assert denied.value.result.decision_id

    def test_guard_tool_call_refuses_invalid_names(self, client: SyncClient) -> None:
        """A hallucinated or hostile tool name is a denial, not a crash."""
        with pytest.raises(ToolCallDenied):
            client.guard_tool_call("../admin", None, **CAROL)
        with pytest.raises(ToolCallDenied):
            client.guard_tool_call("web_search", "not json", arguments_in_context=True, **CAROL)

    def test_guarded_tool_decorator(self, client: SyncClient) -> None:
        """A guarded function runs only for an identity the policy allows, and never outside acting_as."""
        calls = []

        @guarded_tool(client)
        def sql_query(query: str) -> str:
            calls.append(query)
            return "rows"

        with acting_as(**CAROL):
            assert sql_query(query="select 1") == "rows"
        with acting_as(tenant="acme", subject="dave"), pytest.raises(ToolCallDenied):
            sql_query(query="select 2")
        with pytest.raises(ToolCallDenied):
            sql_query(query="select 3")
        assert calls == ["select 1"]

    def test_guarded_async_tool(self, server: ServerHandle) -> None:
        """With an AsyncClient, an async tool function is guarded the same way; a plain one is refused."""

        async def main() -> None:
            async with AsyncClient(server.target) as sdk:

                @guarded_tool(sdk, "web_search")
                async def search(query: str) -> str:
                    return f"found {query}"

                with acting_as(tenant="acme", subject="dave"):
                    assert await search(query="x") == "found x"
                with acting_as(tenant="acme", subject="mallory"), pytest.raises(ToolCallDenied):
                    await search(query="y")
                with pytest.raises(TypeError):
                    guarded_tool(sdk)(lambda: None)

        asyncio.run(main())


class TestRetriesAndDeadlines:
    def test_retries_unavailable_until_the_server_is_back(self, tmp_path: Path) -> None:
        """A read retried on UNAVAILABLE succeeds once a stopped server is restarted on the same port."""
        port = free_port()
        db = f"sqlite:///{tmp_path / 'pe.db'}"
        retry = RetryPolicy(max_attempts=100, initial_backoff=0.05, max_backoff=0.2)
        with SyncClient(f"127.0.0.1:{port}", retry=retry, timeout=30) as sdk:
            with running_server(POLICIES, db_url=db, port=port):
                assert sdk.check(tenant="acme", subject="dave", action="invoke", resource="tool:web_search").allowed
            restarted = threading.Event()
            stop = threading.Event()

            def restart() -> None:
                stop.wait(0.5)
                with running_server(POLICIES, db_url=db, port=port):
                    restarted.set()
                    stop.wait(30)

            thread = threading.Thread(target=restart)
            thread.start()
            try:
                result = sdk.check(tenant="acme", subject="dave", action="invoke", resource="tool:web_search")
                assert restarted.is_set() and result.allowed
                assert sdk.batch_check([("invoke", "tool:web_search")], tenant="acme", subject="dave").all_allowed
            finally:
                stop.set()
                thread.join()

    def test_no_server_is_unavailable_within_the_deadline(self) -> None:
        """With nothing listening, a read fails with Unavailable after its retries, not later than its deadline allows."""
        target = f"127.0.0.1:{free_port()}"
        with SyncClient(target, retry=RetryPolicy(max_attempts=3), timeout=5) as sdk:
            with pytest.raises(Unavailable) as caught:
                sdk.check(tenant="acme", subject="dave", action="invoke", resource="tool:web_search")
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE

    def test_async_retries_after_restart(self, tmp_path: Path) -> None:
        """AsyncClient retries UNAVAILABLE too, and succeeds once the server is back on its port."""
        port = free_port()
        db = f"sqlite:///{tmp_path / 'pe.db'}"
        stop = threading.Event()

        def serve_later() -> None:
            stop.wait(0.5)
            with running_server(POLICIES, db_url=db, port=port):
                stop.wait(30)

        thread = threading.Thread(target=serve_later)
        thread.start()

        async def main() -> bool:
            retry = RetryPolicy(max_attempts=100, initial_backoff=0.05, max_backoff=0.2)
            async with AsyncClient(f"127.0.0.1:{port}", retry=retry, timeout=30) as sdk:
                result = await sdk.check(tenant="acme", subject="dave", action="invoke", resource="tool:web_search")
                return result.allowed

        try:
            assert asyncio.run(main())
        finally:
            stop.set()
            thread.join()

    def test_deadline_is_honoured(self, client: SyncClient) -> None:
        """A call waiting for a version that never comes ends at its deadline with a typed error."""
        with pytest.raises((DeadlineExceeded, FailedPrecondition)) as caught:
            client.check(tenant="acme", subject="dave", action="invoke", resource="tool:web_search", min_version=99, timeout=0.3)
        assert isinstance(caught.value, PolicyEngineClientError)


class _Recorder(authorization_pb2_grpc.AuthorizationServiceServicer):
    """A real gRPC server that answers Check with an allow and records the metadata it got."""

    def __init__(self) -> None:
        self.metadata: list[dict[str, str]] = []

    def Check(self, request, context):  # type: ignore[no-untyped-def] # noqa: N802
        self.metadata.append(dict(context.invocation_metadata()))
        return authorization_pb2.CheckResponse(allowed=True, policy_version=7)


def _recording_server(credentials: grpc.ServerCredentials | None = None) -> tuple[grpc.Server, _Recorder, int]:
    recorder = _Recorder()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    authorization_pb2_grpc.add_AuthorizationServiceServicer_to_server(recorder, server)
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    return server, recorder, port


class TestTransportSecurity:
    def test_bearer_token_is_sent(self) -> None:
        """A token (or a function returning one) is sent as `authorization: Bearer ...` on every call."""
        server, recorder, port = _recording_server()
        tokens = iter(["t1", "t2"])
        try:
            with SyncClient(f"127.0.0.1:{port}", token="static") as sdk:
                sdk.check(tenant="acme", subject="dave", action="invoke", resource="tool:web_search")
            with SyncClient(f"127.0.0.1:{port}", token=lambda: next(tokens)) as sdk:
                sdk.check(tenant="acme", subject="dave", action="invoke", resource="tool:web_search")
                sdk.check(tenant="acme", subject="dave", action="invoke", resource="tool:web_search")
        finally:
            server.stop(0)
        assert [m["authorization"] for m in recorder.metadata] == ["Bearer static", "Bearer t1", "Bearer t2"]

    def test_tls_channel(self, tmp_path: Path) -> None:
        """With TLSConfig the client talks TLS to a server whose certificate it trusts."""
        key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
             "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
            check=True,
            capture_output=True,
        )
        credentials = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
        server, recorder, port = _recording_server(credentials)
        try:
            with SyncClient(f"127.0.0.1:{port}", tls=TLSConfig.from_files(ca=cert), token="secret") as sdk:
                result = sdk.check(tenant="acme", subject="dave", action="invoke", resource="tool:web_search")
        finally:
            server.stop(0)
        assert result.policy_version == 7
        assert recorder.metadata[0]["authorization"] == "Bearer secret"
