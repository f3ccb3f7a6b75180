"""One typed settings object for the server, from command-line flags and environment variables."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULT_DB", "DEFAULT_LISTEN", "Settings", "is_loopback", "split_host_port"]

DEFAULT_LISTEN = "127.0.0.1:50051"
DEFAULT_DB = "sqlite:///policy-engine.db"


@dataclass(frozen=True)
class Settings:
    """How `policy-engine serve` runs.

    listen    host:port of the gRPC server (POLICY_ENGINE_LISTEN)
    db_url    any SQLAlchemy URL (POLICY_ENGINE_DB); SQLite file by default
    policies  folder of policy sets imported at start when the database lacks them
    insecure  allow binding a non-loopback address without authentication
    """

    listen: str = DEFAULT_LISTEN
    db_url: str = DEFAULT_DB
    policies: Path | None = Path("policies")
    insecure: bool = False
    reload_interval: float = 1.0
    grace_seconds: float = 5.0


def split_host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"listen address {address!r} is not host:port")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
