"""The world's requests as gRPC messages (benchmarks/world.py), and reading the answers back.

A phase's traffic is a list of serialised requests drawn from one Stream: the
same bytes go to the real server and to the echo server. `answers` reads the
per-decision allow/deny out of a response, `expected` gives the world's.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import struct_pb2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from policy_engine.v1 import authorization_pb2, types_pb2  # noqa: E402
from stream import Stream  # noqa: E402
from world import Ask, Batch, Resource, World  # noqa: E402

__all__ = ["PHASES", "POLICY_SET", "Phase", "Traffic", "answers", "draw"]

POLICY_SET = "world"


@dataclass(frozen=True)
class Phase:
    method: str  # the AuthorizationService method
    size: int  # decisions per request
    rate: int  # requests per second to draw for (a generous upper bound of the real server's)


PHASES = {
    "check": Phase("Check", 1, 5_000),
    "batch50": Phase("BatchCheck", 50, 1_000),
    "batch100": Phase("BatchCheck", 100, 500),
    "filter100": Phase("FilterAllowed", 100, 500),
}


def _struct(attributes: tuple[tuple[str, Any], ...]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(dict(attributes))
    return message


def _entity(entity_id: str, attributes: tuple[tuple[str, Any], ...] = ()) -> types_pb2.Entity:
    return types_pb2.Entity(id=entity_id, attributes=_struct(attributes) if attributes else None)


def _resource(resource: Resource) -> types_pb2.Resource:
    return types_pb2.Resource(kind=resource.kind, id=resource.id, attributes=_struct(resource.attributes))


def check_message(ask: Ask) -> authorization_pb2.CheckRequest:
    return authorization_pb2.CheckRequest(
        policy_set=POLICY_SET, tenant=ask.tenant, subject=_entity(ask.subject, ask.attributes),
        actor=_entity(ask.actor) if ask.actor else None, action=ask.action, resource=_resource(ask.resource),
    )


def batch_message(batch: Batch) -> authorization_pb2.BatchCheckRequest:
    return authorization_pb2.BatchCheckRequest(
        policy_set=POLICY_SET, tenant=batch.tenant, subject=_entity(batch.subject, batch.attributes),
        actor=_entity(batch.actor) if batch.actor else None,
        items=[authorization_pb2.BatchCheckItem(action=action, resource=_resource(resource))
               for action, resource in batch.items],
    )


def filter_message(batch: Batch) -> authorization_pb2.FilterAllowedRequest:
    return authorization_pb2.FilterAllowedRequest(
        policy_set=POLICY_SET, tenant=batch.tenant, subject=_entity(batch.subject, batch.attributes),
        actor=_entity(batch.actor) if batch.actor else None, action=batch.items[0][0],
        candidates=[_resource(resource) for _, resource in batch.items],
    )


@dataclass
class Traffic:
    """A phase's requests: the world's objects, their serialised messages, the stream's repeat rate."""

    kind: str
    requests: list[Ask | Batch]
    messages: list[bytes]
    repeat_rate: float  # decisions whose whole request was sent before in this stream

    @property
    def phase(self) -> Phase:
        return PHASES[self.kind]

    def asks(self, index: int) -> list[Ask]:
        request = self.requests[index]
        return [request] if isinstance(request, Ask) else request.asks()


def draw(world: World, kind: str, count: int, seed: int, repeat_rate: float = 0.1) -> Traffic:
    """`count` requests of a phase from a fresh stream of the world."""
    stream: Stream = world.stream(seed, repeat_rate)
    size = PHASES[kind].size
    if kind == "check":
        requests: list[Ask | Batch] = list(stream.checks(count))
        messages = [check_message(ask).SerializeToString() for ask in requests]  # type: ignore[arg-type]
    elif kind.startswith("batch"):
        requests = [stream.batch(size) for _ in range(count)]
        messages = [batch_message(batch).SerializeToString() for batch in requests]  # type: ignore[arg-type]
    else:
        requests = [stream.filter(size) for _ in range(count)]
        messages = [filter_message(batch).SerializeToString() for batch in requests]  # type: ignore[arg-type]
    return Traffic(kind, requests, messages, stream.seen / max(stream.decisions, 1))


def answers(kind: str, response: bytes) -> list[bool]:
    """Allowed or not, per decision of a serialised response, in request order."""
    if kind == "check":
        return [authorization_pb2.CheckResponse.FromString(response).allowed]
    if kind.startswith("batch"):
        return [result.allowed for result in authorization_pb2.BatchCheckResponse.FromString(response).results]
    message = authorization_pb2.FilterAllowedResponse.FromString(response)
    allowed = set(message.allowed_indexes)
    count = len(message.allowed_indexes) + len(message.denied)
    return [index in allowed for index in range(count)]
