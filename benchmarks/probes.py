"""Varied Checks against the example policy set (policies/default), for benchmarks that
start a server on it: each call of `check_request()` is the next of a seeded, reproducible
stream over tenants, people, agents, tools, data scopes, models and memory, with the
attributes the rules read. Most requests differ, so no answer comes from a cache of one."""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator

from policy_engine.v1 import authorization_pb2, types_pb2

__all__ = ["check_request", "free_port", "varied_checks"]

_TENANTS = ("acme", "globex")
_PEOPLE = ("alice", "bob", "carol", "dave", "erin", "frank", "mallory", "zoe")
_AGENTS = (None, None, "agent:helper", "agent:researcher", "agent:ops")
_RESOURCES = (
    ("tool", "web_search", "invoke"), ("tool", "sql_query", "invoke"),
    ("tool", "code_interpreter", "invoke"), ("tool", "shell_exec", "invoke"),
    ("tool", "payments_transfer", "invoke"), ("tool", "email_send", "invoke"),
    ("data", "public/handbook", "read"), ("data", "finance/reports", "read"),
    ("data", "secrets/keys", "read"), ("data", "hr/reviews", "write"),
    ("model", "gpt-small", "generate"), ("model", "gpt-large", "generate"),
    ("memory", "session/notes", "write"), ("memory", "profile/prefs", "write"),
)  # fmt: skip


def varied_checks(seed: int = 7) -> Iterator[authorization_pb2.CheckRequest]:
    """An endless stream of CheckRequests drawn from the example set's world."""
    rng = random.Random(seed)
    while True:
        kind, resource_id, action = rng.choice(_RESOURCES)
        resource = types_pb2.Resource(kind=kind, id=resource_id)
        if kind == "data":
            resource.attributes.update({"classification": rng.randrange(4)})
        subject = types_pb2.Entity(id=rng.choice(_PEOPLE))
        subject.attributes.update({"mfa": rng.random() < 0.7, "clearance": rng.randrange(4)})
        request = authorization_pb2.CheckRequest(
            tenant=rng.choice(_TENANTS), subject=subject, action=action, resource=resource
        )
        agent = rng.choice(_AGENTS)
        if agent is not None:
            request.actor.id = agent
        yield request


_STREAM = varied_checks()


def check_request() -> authorization_pb2.CheckRequest:
    """The next request of the module's stream."""
    return next(_STREAM)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
