"""Overload against a real server: what cannot be served within the budget is refused at once
with RESOURCE_EXHAUSTED and a retry-after hint; what is admitted is answered correctly; the
SDK backs off and gets through once the load drops."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from policy_engine.client import ResourceExhausted, RetryPolicy, SyncClient
from policy_engine.client._core import TIMEOUT_HEADER as SDK_TIMEOUT_HEADER
from policy_engine.config import AdmissionSettings
from policy_engine.server.admission import TIMEOUT_HEADER
from policy_engine.testing import ServerHandle, running_server
from policy_engine.v1 import authorization_pb2, authorization_pb2_grpc, types_pb2
from tests.integration.test_check_rpc import request

POLICIES = Path(__file__).resolve().parents[2] / "policies"
ALLOWED = request(resource=types_pb2.Resource(kind="tool", id="web_search"))
DENIED = request(resource=types_pb2.Resource(kind="tool", id="payments_transfer"))


@pytest.fixture(scope="module")
def tight() -> Iterator[ServerHandle]:
    """A server whose queueing budget is far below what a burst of hundreds of Checks takes."""
    with running_server(POLICIES, admission=AdmissionSettings(queue_budget_ms=5, retry_after_ms=50)) as handle:
        yield handle


@pytest.fixture(scope="module")
def server() -> Iterator[ServerHandle]:
    """A server that admits one decision in flight at a time, and any wait for a turn."""
    with running_server(
        POLICIES, admission=AdmissionSettings(queue_budget_ms=60_000, max_in_flight_decisions=1, retry_after_ms=50)
    ) as handle:
        yield handle


def _answers(target: str, calls: int) -> list[tuple[str, authorization_pb2.CheckRequest, object]]:
    """Send `calls` Checks at once (alternately allowed and denied ones, each with the timeout
    header as the SDK sends it); (status, request, response or error) of each."""

    async def burst() -> list[tuple[str, authorization_pb2.CheckRequest, object]]:
        # Spread over connections: one connection carries at most edge.connections.max_streams
        # streams (and the per-connection call limits); the burst is about admission.
        channels = [grpc.aio.insecure_channel(target) for _ in range(max(1, calls // 100))]
        stubs = [authorization_pb2_grpc.AuthorizationServiceStub(channel) for channel in channels]

        async def one(index: int) -> tuple[str, authorization_pb2.CheckRequest, object]:
            sent = ALLOWED if index % 2 else DENIED
            stub = stubs[index % len(stubs)]
            try:
                response = await stub.Check(sent, timeout=20, metadata=((TIMEOUT_HEADER, "20000"),))
            except grpc.aio.AioRpcError as error:
                return error.code().name, sent, error
            return "OK", sent, response

        try:
            return list(await asyncio.gather(*(one(i) for i in range(calls))))
        finally:
            for channel in channels:
                await channel.close()

    return asyncio.run(burst())


def _expected(target: str) -> dict[str, bool]:
    with grpc.insecure_channel(target) as channel:
        stub = authorization_pb2_grpc.AuthorizationServiceStub(channel)
        return {
            sent.resource.id: stub.Check(sent, timeout=10).allowed for sent in (ALLOWED, DENIED)
        }


def test_burst_beyond_budget_is_refused_with_resource_exhausted(tight: ServerHandle, server: ServerHandle) -> None:
    """A burst far above the budget gets RESOURCE_EXHAUSTED with a retry hint (or a refused
    stream), never CANCELLED or DEADLINE_EXCEEDED, and every Check admitted gets its right answer."""
    expected = _expected(server.target)
    assert expected == {"web_search": True, "payments_transfer": False}
    answers = _answers(tight.target, 400)
    statuses = Counter(status for status, _, _ in answers)
    # UNAVAILABLE here is HTTP/2's REFUSED_STREAM from grpc's own overload protection
    # (edge.connections): refused before any work, safe to retry, and retried by the SDK.
    assert set(statuses) <= {"OK", "RESOURCE_EXHAUSTED", "UNAVAILABLE"}, statuses
    assert statuses["RESOURCE_EXHAUSTED"] > 0, statuses
    for status, sent, outcome in answers:
        if status == "OK":
            assert outcome.allowed is expected[sent.resource.id]  # type: ignore[attr-defined]
        elif status == "UNAVAILABLE":
            assert "RST_STREAM" in outcome.details(), outcome.details()  # type: ignore[attr-defined]
        else:
            hint = dict(outcome.trailing_metadata())["retry-after-ms"]  # type: ignore[attr-defined]
            assert int(hint) >= 1
            assert "overloaded" in outcome.details()  # type: ignore[attr-defined]


def test_work_waiting_in_a_handler_counts_against_the_budget(server: ServerHandle) -> None:
    """While a Check waits inside the server (for a policy version not there yet) and fills the
    in-flight budget, another Check is refused at once; once it is done, Checks pass again."""
    with grpc.insecure_channel(server.target) as channel:
        stub = authorization_pb2_grpc.AuthorizationServiceStub(channel)
        waiter = stub.Check.future(request(min_version=99), timeout=3)
        refused = None
        for _ in range(200):  # until the waiter has reached its handler
            try:
                stub.Check(ALLOWED, timeout=10)
            except grpc.RpcError as error:
                refused = error
                break
            threading.Event().wait(0.01)
        assert refused is not None and refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        with pytest.raises(grpc.RpcError) as waited:
            waiter.result()
        assert waited.value.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.DEADLINE_EXCEEDED)
        assert stub.Check(ALLOWED, timeout=10).allowed is True


def test_a_batch_larger_than_the_budget_is_served_when_alone(server: ServerHandle) -> None:
    """A BatchCheck weighing more than the in-flight budget still runs when nothing else does."""
    with grpc.insecure_channel(server.target) as channel:
        stub = authorization_pb2_grpc.AuthorizationServiceStub(channel)
        items = [
            authorization_pb2.BatchCheckItem(action="invoke", resource=types_pb2.Resource(kind="tool", id=tool))
            for tool in ("web_search", "payments_transfer", "web_search")
        ]
        response = stub.BatchCheck(
            authorization_pb2.BatchCheckRequest(tenant="acme", subject=ALLOWED.subject, items=items), timeout=10
        )
        assert [result.allowed for result in response.results] == [True, False, True]


def test_sdk_backs_off_and_gets_through_once_load_drops(server: ServerHandle) -> None:
    """The SDK retries RESOURCE_EXHAUSTED with backoff within its deadline and is answered once
    the work that filled the budget is done; with too few attempts it raises ResourceExhausted."""
    with grpc.insecure_channel(server.target) as channel:
        stub = authorization_pb2_grpc.AuthorizationServiceStub(channel)
        patient = RetryPolicy(max_attempts=100, initial_backoff=0.02, max_backoff=0.2)
        with SyncClient(server.target, retry=patient, timeout=10) as sdk, SyncClient(
            server.target, retry=RetryPolicy(max_attempts=1), timeout=10
        ) as impatient:
            waiter = stub.Check.future(request(min_version=99), timeout=1.5)
            refused = None
            for _ in range(200):  # until the waiter holds the budget
                try:
                    impatient.check(tenant="acme", subject="bob", action="invoke", resource="tool:web_search")
                except ResourceExhausted as error:
                    refused = error
                    break
                threading.Event().wait(0.01)
            assert refused is not None
            result = sdk.check(
                tenant="acme",
                subject="bob",
                subject_attributes={"mfa": True, "clearance": 2},
                action="invoke",
                resource="tool:web_search",
            )
            assert result.allowed is True
            assert waiter.done()


def test_sdk_and_server_name_the_same_timeout_header() -> None:
    """The SDK sends the attempt's timeout under the name the server reads."""
    assert SDK_TIMEOUT_HEADER == TIMEOUT_HEADER
