"""A bounded, thread-safe decision cache owned by one Engine (so one policy version).

Keys are built from request values only when every value is a plain `str`
or an `Entity` whose attributes are plain scalars; anything else is not
cached. A new policy version is a new Engine with a new, empty cache, so a
cached decision can never outlive the rules that made it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from collections import OrderedDict
from typing import Any

from policy_engine.engine.types import Decision, Entity

__all__ = ["DecisionCache", "FailedEvaluation", "cache_key", "key_part"]

_ENTITY = object()
_UNKNOWN = object()
_PLAIN = frozenset({str, int, bool, type(None)})


def _compute_entity_key(value: Entity) -> tuple[Any, ...] | None:
    attributes = value.attributes
    values = tuple(attributes.values())
    kinds = tuple(map(type, values))
    if _PLAIN.issuperset(kinds):
        # the types are part of the key: 1, 1.0 and True are equal but not interchangeable
        return (_ENTITY, str.__str__(value), tuple(attributes), values, kinds)
    parts: list[Any] = []
    for name, item in attributes.items():
        kind = type(item)
        if kind in _PLAIN:
            parts.append((name, kind, item))
        elif kind is float:
            parts.append((name, kind, item.hex()))  # tells -0.0 from 0.0
        else:
            return None
    return (_ENTITY, str.__str__(value), tuple(parts))


def cache_key(values: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """A hashable key standing for exactly these request values, or None when not cacheable.

    Entities with the same id and attributes in another order get another key: a miss, never
    a wrong answer.
    """
    parts = tuple(map(key_part, values))
    return None if None in parts else parts


def key_part(value: Any) -> Any:
    """One request value's part of its cache key (see cache_key); None when not cacheable.

    A caller deciding many requests that share values (a batch: one subject, many resources)
    can keep the parts and assemble keys itself: `tuple(parts)` in the request's order is
    `cache_key(values)`.
    """
    kind = type(value)
    if kind is str:
        return value
    if kind is Entity:
        # An Entity is immutable: its key is computed once and kept on it (a request's subject
        # is decided against many resources, a recurring resource against many subjects).
        part = value.__dict__.get("_cache_key", _UNKNOWN)
        if part is _UNKNOWN:
            part = value.__dict__["_cache_key"] = _compute_entity_key(value)
        return part
    return None


@dataclass(frozen=True)
class FailedEvaluation:
    """A request whose evaluation raised: cached like a decision, raised again on a hit."""

    message: str


class DecisionCache:
    """Least-recently-used map from request key to Decision, at most `size` entries."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[Any, ...], Decision | FailedEvaluation] = OrderedDict()
        self._lock = threading.Lock()
        # Statistics only: unlocked increments may lose a count under threads, never a decision.
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple[Any, ...]) -> Decision | FailedEvaluation | None:
        # Lock-free read: each OrderedDict call is atomic; a key evicted in between only
        # loses its recency update.
        entries = self._entries
        decision = entries.get(key)
        if decision is None:
            self.misses += 1
        else:
            self.hits += 1
            try:
                entries.move_to_end(key)
            except KeyError:
                pass
        return decision

    def put(self, key: tuple[Any, ...], decision: Decision | FailedEvaluation) -> None:
        with self._lock:
            self._entries[key] = decision
            if len(self._entries) > self.size:
                self._entries.popitem(last=False)
