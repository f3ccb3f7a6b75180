"""Bounds on the server's connections, as gRPC core channel arguments.

An abusive peer is cheap to be: idle connections cost the server a descriptor each,
streams opened and cancelled cost it a call each, and a message is received whole
before anyone looks at it. What bounds each of those:

- open connections: `grpc.max_allowed_incoming_connections` (beyond it a new connection
  is closed as soon as it is accepted; existing ones are untouched), at most what the
  open-file limit leaves after a reserve for the database, the log and the spill files;
- a connection that never finishes its handshake: `grpc.server_handshake_timeout_ms`;
- an idle connection: `grpc.max_connection_idle_ms` (GOAWAY; clients reconnect on demand);
- any connection: `grpc.max_connection_age_ms` and `..._grace_ms`, so that none is held
  forever and load spreads again across replicas;
- calls at once on one connection: `grpc.max_concurrent_streams`, counted as allocated
  streams rather than open ones (`grpc.http.overload_protection`), so that a stream
  reset by the client still counts until the server has let go of it (HTTP/2 rapid reset);
- pings: a client pinging more often than `grpc.http2.min_ping_interval_without_data_ms`
  without calls collects strikes, and `grpc.http2.max_ping_strikes` of them close the
  connection; the server pings quiet connections itself to find dead peers.

Calls started per connection per second are bounded in the interceptor (Guard).
Message sizes per method are bounded there too, before the body is parsed.
"""

from __future__ import annotations

import logging
import resource

from policy_engine import limits
from policy_engine.config import EdgeSettings

__all__ = ["DESCRIPTOR_RESERVE", "channel_options", "connection_cap"]

log = logging.getLogger(__name__)

# Descriptors kept for everything that is not a client connection: the database pool, the
# decision log's spill files and writer, the listening sockets, metrics, logs.
DESCRIPTOR_RESERVE = 128
_MAX_AUTO_CONNECTIONS = 10_000


def connection_cap(configured: int) -> int:
    """The connection cap: `configured`, or (0) what the open-file limit allows.

    Raises the soft open-file limit to the hard one first (the usual 1,024 is what a
    flood of idle connections exhausted), and never lets a configured cap exceed what
    the limit leaves: a cap above it would fail the descriptors it meant to protect.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    available = _MAX_AUTO_CONNECTIONS if soft == resource.RLIM_INFINITY else max(16, soft - DESCRIPTOR_RESERVE)
    if configured <= 0:
        return min(available, _MAX_AUTO_CONNECTIONS)
    if configured > available:
        log.warning(
            "edge.connections.max %d is more than the open-file limit allows; capping at %d",
            configured,
            available,
        )
        return available
    return configured


def channel_options(edge: EdgeSettings, *, reuse_port: bool) -> list[tuple[str, int]]:
    """The server's channel arguments. `reuse_port`: only when this process is one of the
    `--workers` sharing the port; otherwise a taken port fails the start."""
    connections, keepalive = edge.connections, edge.keepalive
    return [
        # The largest message any method accepts (a pushed bundle); each method's own,
        # much smaller limit is checked before its body is parsed (interceptors).
        ("grpc.max_receive_message_length", limits.MAX_MESSAGE_BYTES),
        ("grpc.so_reuseport", 1 if reuse_port else 0),
        ("grpc.max_allowed_incoming_connections", connection_cap(connections.max)),
        ("grpc.server_handshake_timeout_ms", _ms(connections.handshake_timeout_seconds)),
        ("grpc.max_connection_idle_ms", _ms(connections.idle_timeout_seconds)),
        ("grpc.max_connection_age_ms", _ms(connections.max_age_seconds)),
        ("grpc.max_connection_age_grace_ms", _ms(connections.max_age_grace_seconds)),
        ("grpc.max_concurrent_streams", connections.max_streams),
        ("grpc.http.overload_protection", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", _ms(keepalive.min_ping_interval_seconds)),
        ("grpc.http2.max_ping_strikes", keepalive.max_ping_strikes),
        ("grpc.keepalive_permit_without_calls", 1 if keepalive.permit_without_calls else 0),
        ("grpc.keepalive_time_ms", _ms(keepalive.time_seconds)),
        ("grpc.keepalive_timeout_ms", _ms(keepalive.timeout_seconds)),
    ]


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
