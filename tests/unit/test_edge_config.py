"""The edge section of the configuration file: connection bounds and the local admin as written, bad values refused naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from policy_engine.config import ConfigError, ConnectionSettings, EdgeSettings, RateSettings, load_config
from policy_engine.server.connections import channel_options, connection_cap


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_edge_settings_as_written_and_defaults_for_the_rest(tmp_path: Path) -> None:
    """Keys given are taken, relative token files resolve beside the config, the rest keep their defaults."""
    edge = load_config(write(tmp_path, (
        "edge:\n"
        "  connections: {max: 50, idle_timeout_seconds: 30, calls: {rate: 10, burst: 20}}\n"
        "  keepalive: {max_ping_strikes: 0}\n"
        "  local_admin: {token_file: secrets/admin-token, anonymous_scopes: []}\n"
    ))).edge
    assert edge.connections.max == 50
    assert edge.connections.idle_timeout_seconds == 30.0
    assert edge.connections.calls == RateSettings(10, 20)
    assert edge.connections.max_streams == ConnectionSettings().max_streams
    assert edge.keepalive.max_ping_strikes == 0
    assert edge.local_admin.token_file == tmp_path / "secrets" / "admin-token"
    assert edge.local_admin.anonymous_scopes == frozenset()
    assert load_config(write(tmp_path, "metrics: {}\n")).edge == EdgeSettings()


@pytest.mark.parametrize(("text", "message"), [
    ("edge:\n  connections: {max: -1}\n", r"edge.connections.max: must be at least 0"),
    ("edge:\n  connections: {max_streams: 0}\n", r"edge.connections.max_streams: must be at least 1"),
    ("edge:\n  connections: {idle_timeout_seconds: 0}\n", r"edge.connections.idle_timeout_seconds: must be more than 0"),
    ("edge:\n  connections: {calls: {rate: 0}}\n", r"edge.connections.calls.rate: must be more than 0"),
    ("edge:\n  keepalive: {time_seconds: soon}\n", r"edge.keepalive.time_seconds: must be float"),
    ("edge:\n  local_admin: {anonymous_scopes: [1]}\n", r"edge.local_admin.anonymous_scopes: must be a list of strings"),
])
def test_bad_edge_settings_are_refused_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    """A bad edge value is a ConfigError that names its key path."""
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))


def test_channel_options_share_the_port_only_for_workers_and_never_exceed_the_descriptors() -> None:
    """so_reuseport is 0 unless this is a --workers worker; the connection cap stays under the open-file limit."""
    options = dict(channel_options(EdgeSettings(), reuse_port=False))
    assert options["grpc.so_reuseport"] == 0
    assert dict(channel_options(EdgeSettings(), reuse_port=True))["grpc.so_reuseport"] == 1
    assert options["grpc.max_concurrent_streams"] == ConnectionSettings().max_streams
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert options["grpc.max_allowed_incoming_connections"] <= soft
    assert connection_cap(10**9) <= soft
