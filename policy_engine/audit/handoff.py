"""How entries cross from the serving process to the writer process: pickled messages on a pipe.

A message holds the units the serving process buffered (a Check's record, a BatchCheck's group)
in order. Records cross as plain tuples, columns of consecutive records at once; a group whose
items are PlainItems crosses as its one JSON text.
"""

from __future__ import annotations

import fcntl
import io
import logging
import pickle
from collections.abc import Sequence
from types import MappingProxyType
from typing import Any

from policy_engine.audit.records import DecisionGroup, DecisionRecord, GroupItem, PlainItems, weight

__all__ = ["dumps", "loads", "pickling_cost", "widen"]

log = logging.getLogger(__name__)


class _Pickler(pickle.Pickler):
    # Records cross as plain tuples (the writer reads them by position), group items too, and
    # the engine's read-only attribute mappings as dicts. The pickler's memo keeps an object
    # shared by many entries (a subject's attributes) shared, and pickled once.
    dispatch_table = {
        DecisionRecord: lambda entry: (tuple, (tuple(entry),)),
        GroupItem: lambda item: (tuple, (tuple(item),)),
        MappingProxyType: lambda mapping: (dict, (dict(mapping),)),
    }


def pickling_cost(unit: Sequence[DecisionRecord] | DecisionGroup) -> int:
    """What `unit` costs `dumps`, in entries: a group of PlainItems crosses as one text, so a
    FilterAllowed's hundred candidates cost about what one Check's entry does."""
    if type(unit) is DecisionGroup and type(unit.items) is PlainItems:
        return 1
    return weight(unit)


def dumps(chunks: Sequence[Sequence[DecisionRecord] | DecisionGroup] | None) -> bytes:
    """One message: the chunks' records and groups, in order. Consecutive records go as columns
    (entries that share values, such as one subject, then cost the pickler's memo a reference
    each, and no entry needs a reducer call); `loads` gives them back as plain tuples, and each
    group as a DecisionGroup. None is the end marker."""
    buffer = io.BytesIO()
    if chunks is None:
        _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(None)
        return buffer.getvalue()
    segments: list[Any] = []
    records: list[DecisionRecord] = []
    for chunk in chunks:
        if type(chunk) is DecisionGroup:
            if records:
                segments.append(tuple(zip(*records)))
                records = []
            segments.append(chunk)
        else:
            records.extend(chunk)
    if records:
        segments.append(tuple(zip(*records)))
    try:
        _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(segments)
    except Exception:  # noqa: BLE001 - an attribute value that does not pickle
        buffer = io.BytesIO()
        safe = [
            _picklable_group(segment) if type(segment) is DecisionGroup
            else tuple(zip(*[_picklable(entry) for entry in zip(*segment)]))
            for segment in segments
        ]
        _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(safe)
    return buffer.getvalue()


def loads(message: bytes) -> list[list[tuple[Any, ...]] | DecisionGroup] | None:
    """The records (as lists of tuples) and groups of a message, in order; None: the end."""
    segments = pickle.loads(message)
    if segments is None:
        return None
    return [segment if type(segment) is DecisionGroup else list(zip(*segment)) for segment in segments]


def _picklable(entry: DecisionRecord) -> Any:
    """`entry`, or, when its attributes do not pickle, `entry` without them (as the writer
    would store an entry whose attributes it cannot encode)."""
    try:
        _Pickler(io.BytesIO(), protocol=pickle.HIGHEST_PROTOCOL).dump(entry)
    except Exception as exc:  # noqa: BLE001
        log.warning("decision %s: attributes not recordable (%s)", entry[0], exc)
        return (*tuple(entry)[:15], {})
    return entry


def _picklable_group(group: DecisionGroup) -> DecisionGroup:
    """`group`, without the attributes (shared, or an item's own) that do not pickle."""
    try:
        _Pickler(io.BytesIO(), protocol=pickle.HIGHEST_PROTOCOL).dump(group.attributes)
    except Exception as exc:  # noqa: BLE001
        log.warning("decisions %s*: shared attributes not recordable (%s)", group.id_prefix, exc)
        group = group._replace(attributes={})
    items = []
    for item in group.items:
        try:
            _Pickler(io.BytesIO(), protocol=pickle.HIGHEST_PROTOCOL).dump(item)
        except Exception as exc:  # noqa: BLE001
            log.warning("decision %s: attributes not recordable (%s)", group.id_prefix + item[0], exc)
            item = (*tuple(item)[:7], {})
        items.append(item)
    return group._replace(items=items)


def widen(connection: Any) -> None:
    """Give the pipe a 1 MiB buffer (Linux; the default is 64 KiB) where the system allows it: a
    flush of twenty FilterAllowed groups is about 250 KB, which a 64 KiB pipe takes in four
    writes, each waiting for the writer process to wake up and read."""
    size = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux only
    if size is None:
        return
    try:
        fcntl.fcntl(connection.fileno(), size, _PIPE_BYTES)
    except OSError as exc:  # above /proc/sys/fs/pipe-max-size: the default buffer then
        log.debug("decision log: pipe buffer left at its default (%s)", exc)


_PIPE_BYTES = 1 << 20

