"""What credentials a call carries: its one `authorization` metadata value."""

from __future__ import annotations

from collections.abc import Iterable

from policy_engine.errors import UnauthenticatedError

__all__ = ["authorization_value"]


def authorization_value(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The call's one `authorization` metadata value; None when there is none.

    Several values are refused: which one a proxy, a log or this server reads
    would differ, and letting the last one win lets an appended header override."""
    found: str | None = None
    count = 0
    for key, value in metadata or ():
        if key == "authorization":
            count += 1
            found = value if isinstance(value, str) else ""
    if count > 1:
        raise UnauthenticatedError(f"authorization: {count} values in the metadata; send exactly one")
    return found
