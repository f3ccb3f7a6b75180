"""Credentials never reach the log: drop credential-named attributes and token-shaped values.

The service already keeps tokens and request metadata out of DecisionRecord; this is the second
line, applied by the writer to every attribute before it is encrypted or hashed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["REDACTED", "is_credential_name", "redact"]

REDACTED = "[redacted]"

_CREDENTIAL_KEYS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "proxy_authorization",
        "cookie",
        "set-cookie",
        "token",
        "access_token",
        "id_token",
        "refresh_token",
        "bearer",
        "password",
        "secret",
        "api_key",
        "x-api-key",
    }
)
# "Bearer x", "Basic x", or a JWT (three base64url parts, the first a JSON header "eyJ...").
_TOKEN_SHAPED = re.compile(
    r"^\s*(?:(?:bearer|basic)\s+\S+|eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)\s*$",
    re.IGNORECASE,
)


def is_credential_name(key: Any) -> bool:
    """True for a key that `redact` drops wherever it appears (authorization, token, ...)."""
    return str(key).lower() in _CREDENTIAL_KEYS


def redact(value: Any) -> Any:
    """`value` with credential-named keys removed and token-shaped strings replaced, recursively."""
    # Concrete types first: an ABC isinstance check per scalar is most of the cost otherwise.
    kind = type(value)
    if kind is str:
        return REDACTED if _TOKEN_SHAPED.match(value) else value
    if kind in _SCALARS:
        return value
    if kind is dict or isinstance(value, Mapping):
        if not value:
            return {}
        return {
            str(key): redact(item)
            for key, item in value.items()
            if str(key).lower() not in _CREDENTIAL_KEYS
        }
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    if isinstance(value, str) and _TOKEN_SHAPED.match(value):
        return REDACTED
    return value


_SCALARS = frozenset({int, float, bool, type(None)})
