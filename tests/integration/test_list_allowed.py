"""ListAllowed over a real gRPC channel: never lists anything Check denies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import struct_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policy_engine.testing import running_server
from policy_engine.v1 import authorization_pb2, authorization_pb2_grpc, types_pb2

ROOT = Path(__file__).resolve().parents[2]
SEGMENT = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=8)


@pytest.fixture(scope="module")
def stub() -> Iterator[authorization_pb2_grpc.AuthorizationServiceStub]:
    with running_server(ROOT / "policies") as server, grpc.insecure_channel(server.target) as channel:
        yield authorization_pb2_grpc.AuthorizationServiceStub(channel)


def struct(**values: object) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(values)
    return s


def test_lists_ids_and_patterns(stub) -> None:  # type: ignore[no-untyped-def]
    """A viewer's listing has the public data prefix; an admin's tools are concrete ids and partial, with reasons."""
    viewer = stub.ListAllowed(
        authorization_pb2.ListAllowedRequest(tenant="acme", subject=types_pb2.Entity(id="dave"), action="read", kind="data")
    )
    assert list(viewer.patterns) == ["data:public/*"] and not viewer.partial
    assert viewer.policy_version == 1
    admin = stub.ListAllowed(
        authorization_pb2.ListAllowedRequest(
            tenant="acme", subject=types_pb2.Entity(id="alice", attributes=struct(mfa=True)), action="invoke", kind="tool"
        )
    )
    assert {"web_search", "shell_exec"} <= set(admin.resource_ids)
    assert "payments_transfer" not in admin.resource_ids
    assert admin.partial and admin.partial_reasons


def test_bad_requests(stub) -> None:  # type: ignore[no-untyped-def]
    """A missing kind is INVALID_ARGUMENT naming kind; subject_token is UNIMPLEMENTED."""
    with pytest.raises(grpc.RpcError) as caught:
        stub.ListAllowed(authorization_pb2.ListAllowedRequest(tenant="acme", subject=types_pb2.Entity(id="dave"), action="read"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith("kind")
    with pytest.raises(grpc.RpcError) as caught:
        stub.ListAllowed(
            authorization_pb2.ListAllowedRequest(
                tenant="acme", subject=types_pb2.Entity(id="dave"), action="read", kind="data", subject_token="x"
            )
        )
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    subject=st.sampled_from(["alice", "bob", "carol", "dave", "erin", "frank", "mallory"]),
    actor=st.sampled_from([None, "agent:helper", "agent:researcher", "agent:ops", "agent:rogue"]),
    tenant=st.sampled_from(["acme", "globex", "initech"]),
    mfa=st.booleans(),
    clearance=st.integers(0, 3),
    action=st.sampled_from(["invoke", "read", "write", "generate"]),
    kind=st.sampled_from(["tool", "data", "model", "memory"]),
    classification=st.one_of(st.none(), st.integers(0, 3)),
    suffixes=st.lists(st.lists(SEGMENT, min_size=1, max_size=3).map("/".join), min_size=1, max_size=4),
)
def test_never_lists_what_check_denies(stub, subject, actor, tenant, mfa, clearance, action, kind, classification, suffixes) -> None:  # type: ignore[no-untyped-def]
    """For example-policy principals, every listed id, and random ids under every listed pattern, are allowed by Check."""
    who = dict(
        tenant=tenant,
        subject=types_pb2.Entity(id=subject, attributes=struct(mfa=mfa, clearance=clearance)),
        actor=types_pb2.Entity(id=actor) if actor else None,
        action=action,
    )
    listing = stub.ListAllowed(authorization_pb2.ListAllowedRequest(kind=kind, **who))
    ids = list(listing.resource_ids)
    for pattern in listing.patterns:
        assert pattern.startswith(f"{kind}:") and pattern.endswith("*")
        ids.extend(pattern[len(kind) + 1 : -1] + suffix for suffix in suffixes)
    attributes = struct() if classification is None else struct(classification=classification)
    for resource_id in ids:
        response = stub.Check(
            authorization_pb2.CheckRequest(resource=types_pb2.Resource(kind=kind, id=resource_id, attributes=attributes), **who)
        )
        assert response.allowed, (resource_id, response.reason)
