"""Rate limits and threat windows shared by replicas through a real Redis; per process without it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import grpc
import pytest

from policy_engine.config import RateSettings, RedisSettings, ThreatSettings
from policy_engine.service.counters import LocalCounters, RedisCounters
from policy_engine.testing import ServerHandle, running_server
from policy_engine.v1 import authorization_pb2_grpc, types_pb2
from tests.integration.test_audit_trail import eventually
from tests.integration.test_edge_security import ROOT, caller, check_request, security, user_token
from tests.support.redis_keys import redis_namespace
from tests.support.tcp_proxy import TcpProxy
from tests.unit.test_tokens import FACTORY


@pytest.fixture
def shared() -> Iterator[RedisSettings]:
    with redis_namespace() as (url, prefix):
        yield RedisSettings(url, key_prefix=prefix)


def _replicas(
    count: int, jwks: Path, redis: RedisSettings | None, threats: ThreatSettings | None = None, **limits: RateSettings
) -> tuple[ExitStack, list[ServerHandle]]:
    """`count` in-process servers, each with its own guard, threat monitor and database: nothing
    but Redis is shared between them."""
    settings = dataclasses.replace(security(jwks, **limits), redis=redis)
    stack = ExitStack()
    handles = [
        stack.enter_context(running_server(ROOT / "policies", security=settings, threats=threats))
        for _ in range(count)
    ]
    return stack, handles


def _served(stubs: list[authorization_pb2_grpc.AuthorizationServiceStub], calls: int, **request: object) -> int:
    """How many of `calls` Checks, sent to the replicas in turn, were answered (not rate limited)."""
    answered = 0
    for n in range(calls):
        try:
            stubs[n % len(stubs)].Check(check_request(**request), metadata=caller())
            answered += 1
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, exc
    return answered


@pytest.mark.parametrize("named_by", ["subject_id", "subject_token"])
def test_two_replicas_share_one_subject_budget(
    tmp_path: Path, shared: RedisSettings, named_by: str
) -> None:
    """With Redis, a subject's burst of 10 holds across two replicas: 10 of 20 calls answered, not 20."""
    jwks = FACTORY.write_jwks(tmp_path / "jwks.json")
    stack, servers = _replicas(2, jwks, shared, subject=RateSettings(rate=0.01, burst=10))
    with stack:
        channels = [stack.enter_context(grpc.insecure_channel(s.target)) for s in servers]
        stubs = [authorization_pb2_grpc.AuthorizationServiceStub(ch) for ch in channels]
        who = (
            {"subject": types_pb2.Entity(id="bob")}
            if named_by == "subject_id"
            else {"subject": types_pb2.Entity(), "subject_token": user_token(sub="bob")}
        )
        assert _served(stubs, 20, **who) == 10
        # another subject has a budget of its own
        assert _served(stubs, 2, subject=types_pb2.Entity(id="carol")) == 2


def test_two_replicas_share_one_caller_budget(tmp_path: Path, shared: RedisSettings) -> None:
    """With Redis, a caller's burst of 6 holds across two replicas."""
    jwks = FACTORY.write_jwks(tmp_path / "jwks.json")
    stack, servers = _replicas(2, jwks, shared, caller=RateSettings(rate=0.01, burst=6))
    with stack:
        stubs = [
            authorization_pb2_grpc.AuthorizationServiceStub(stack.enter_context(grpc.insecure_channel(s.target)))
            for s in servers
        ]
        assert _served(stubs, 12) == 6


def test_without_redis_each_replica_has_its_own_budget(tmp_path: Path) -> None:
    """Without Redis the budget holds per process (what the docs promise, and why Redis is needed)."""
    jwks = FACTORY.write_jwks(tmp_path / "jwks.json")
    stack, servers = _replicas(2, jwks, None, subject=RateSettings(rate=0.01, burst=5))
    with stack:
        stubs = [
            authorization_pb2_grpc.AuthorizationServiceStub(stack.enter_context(grpc.insecure_channel(s.target)))
            for s in servers
        ]
        assert _served(stubs, 20) == 10


def test_denials_spread_over_replicas_still_quarantine_the_pair(tmp_path: Path, shared: RedisSettings) -> None:
    """Four denials of alice through agent:helper, two per replica, exceed 3: the replica that sees the
    fourth quarantines the pair (each replica alone saw only two)."""
    jwks = FACTORY.write_jwks(tmp_path / "jwks.json")
    threats = ThreatSettings(tenants={"acme": (3, 60.0, 300.0)})
    stack, servers = _replicas(2, jwks, shared, threats)
    with stack:
        stubs = [
            authorization_pb2_grpc.AuthorizationServiceStub(stack.enter_context(grpc.insecure_channel(s.target)))
            for s in servers
        ]
        helper = {"actor": types_pb2.Entity(id="agent:helper"), "subject": types_pb2.Entity(id="alice")}
        for n, tool in enumerate(("shell_exec", "sql_query", "code_interpreter", "email_send")):
            request = check_request(resource=types_pb2.Resource(kind="tool", id=tool), **helper)
            assert not stubs[n % 2].Check(request, metadata=caller()).allowed
        # the fourth denial was on replica 1; a real deployment shares the quarantine through its
        # database (here each replica has its own)
        eventually(lambda: stubs[1].Check(check_request(**helper), metadata=caller()).reason == "quarantined")
        # the agent still serves another user
        dave = check_request(actor=types_pb2.Entity(id="agent:helper"))
        assert stubs[1].Check(dave, metadata=caller()).allowed


def test_redis_outage_keeps_deciding_with_per_process_limits(tmp_path: Path, shared: RedisSettings) -> None:
    """When Redis goes away, decisions go on and the subject limit still holds in each process."""
    proxy = TcpProxy(("127.0.0.1", int(shared.url.split(":")[2].split("/")[0])))
    proxy.start()
    database = shared.url.rsplit("/", 1)[1]
    redis = dataclasses.replace(shared, url=f"redis://127.0.0.1:{proxy.port}/{database}", timeout_seconds=0.2)
    jwks = FACTORY.write_jwks(tmp_path / "jwks.json")
    settings = dataclasses.replace(security(jwks, subject=RateSettings(rate=0.01, burst=4)), redis=redis)
    try:
        with running_server(ROOT / "policies", security=settings) as server, grpc.insecure_channel(server.target) as ch:
            stub = authorization_pb2_grpc.AuthorizationServiceStub(ch)
            assert _served([stub], 2, subject=types_pb2.Entity(id="erin")) == 2
            proxy.stop()
            # Redis is gone: still answered, from this process's own bucket (full: 4 more, then refused)
            assert _served([stub], 6, subject=types_pb2.Entity(id="erin")) == 4
            assert stub.Check(check_request(), metadata=caller()).allowed
    finally:
        proxy.close()


def test_redis_and_local_counters_agree(shared: RedisSettings) -> None:
    """The Redis bucket and window answer a sequence of calls as the in-process ones do."""
    remote = RedisCounters(shared.url, prefix=shared.key_prefix)
    local = LocalCounters()
    try:
        for counters in (remote, local):
            takes = [counters.take("bucket", 0.001, 5, cost) for cost in (1, 1, 2, 1, 1)]
            assert [wait == 0 for wait in takes] == [True, True, True, True, False]
            assert 900 < takes[-1] <= 1000  # one token missing at 0.001/s
            assert counters.take("big", 0.001, 5, cost=50) == 0  # a cost above the burst empties a full bucket
            fired = [counters.burst("window", subject, 60, 3, min_members=2) for subject in ("a",) * 6 + ("b",)]
            assert fired == [False] * 6 + [True]
            assert not counters.burst("window", "a", 60, 3, min_members=2)  # starts afresh
    finally:
        remote.close()
