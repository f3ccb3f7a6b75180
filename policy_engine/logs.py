"""Structured logs: one JSON object per line, with the request's context bound to every line.

    bind_request(request_id="r-1", policy_set="default", policy_version=3)

adds those fields to every log line emitted while that request is handled
(contextvars follow asyncio tasks). Tokens never go through here: nothing
binds request metadata, and no log call formats a token.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import Any, TextIO

from pythonjsonlogger.json import JsonFormatter

__all__ = ["bind_request", "configure_logging"]

_context: ContextVar[dict[str, Any] | None] = ContextVar("log_context", default=None)


def bind_request(**fields: Any) -> None:
    """Add fields to every log line of the current request (task)."""
    current = _context.get()
    bound = dict(current) if current else {}
    for key, value in fields.items():
        if value is not None and value != "":
            bound[key] = value
    _context.set(bound)


class _RequestContext(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_context.get() or {}).items():
            setattr(record, key, value)
        return True


def configure_logging(level: str = "INFO", fmt: str = "json", stream: TextIO = sys.stderr) -> None:
    handler = logging.StreamHandler(stream)
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_RequestContext())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("alembic").setLevel(logging.WARNING)
