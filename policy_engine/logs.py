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

# The fields bound so far in this request (task), as a chain of (earlier, fields, length):
# binding is on every request's path and costs one tuple; the fields are merged only when a line
# is logged (or when a context that is never left binds over and over: then the chain is folded).
_Bound = tuple["_Bound | None", dict[str, Any], int]
_context: ContextVar[_Bound | None] = ContextVar("log_context", default=None)
_FOLD_AT = 16


def bind_request(**fields: Any) -> None:
    """Add fields to every log line of the current request (task)."""
    bound = _context.get()
    link: _Bound = (bound, fields, 1 if bound is None else bound[2] + 1)
    if link[2] > _FOLD_AT:
        link = (None, _merged(link), 1)
    _context.set(link)


def _merged(link: _Bound | None) -> dict[str, Any]:
    """The fields of a chain of bindings, later bindings winning; empty values are left out."""
    chain = []
    while link is not None:
        chain.append(link[1])
        link = link[0]
    merged: dict[str, Any] = {}
    for fields in reversed(chain):
        for key, value in fields.items():
            if value is not None and value != "":
                merged[key] = value
    return merged


class _RequestContext(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _merged(_context.get()).items():
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
