"""Principal: an authenticated caller of the service."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ANONYMOUS", "Principal"]


@dataclass(frozen=True)
class Principal:
    """A caller: its id (token `sub` or certificate identity), scopes, and how it proved itself."""

    id: str
    scopes: frozenset[str] = frozenset()
    method: str = "none"  # "jwt", "mtls" or "none" (authentication not configured)
    claims: Mapping[str, Any] = field(default_factory=dict)


# The caller when authentication is not configured (loopback-only deployments).
ANONYMOUS = Principal(id="anonymous", method="none")
