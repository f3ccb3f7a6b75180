"""The vocabulary of the decision core: request values, rules and decisions.

Everything here is immutable, so a compiled policy and its decisions can be
shared across threads and asyncio tasks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType
from typing import Any

__all__ = ["Decision", "EnforceContext", "Entity", "MatchedRule"]


class Entity(str):
    """A request value that *is* its id string and also carries attributes.

    Casbin matchers compare request values as strings (`g(r.sub, p.sub, r.dom)`,
    `keyMatch(r.obj, p.obj)`) and read attributes from them (`r.sub.mfa`). An
    Entity serves both: it compares, hashes and formats as its id, and
    `entity.<name>` reads an attribute. Attribute names that a `str` already
    has (`count`, `title`, ...) resolve to the str method, so the service
    refuses such names before they get here.
    """

    attributes: Mapping[str, Any]

    def __new__(cls, id: str, attributes: Mapping[str, Any] | None = None) -> Entity:  # noqa: A002
        value = super().__new__(cls, id)
        value.attributes = MappingProxyType(dict(attributes or {}))
        return value

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["attributes"][name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def id(self) -> str:
        return str.__str__(self)

    def __repr__(self) -> str:
        return f"Entity({str.__repr__(self)}, {dict(self.attributes)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Entity, (self.id, dict(self.attributes)))


@dataclass(frozen=True)
class MatchedRule:
    """A rule as written: its type (`p`, `p2`, ...), its values, and its line in the policy text."""

    ptype: str
    values: tuple[str, ...]
    line: int | None = None

    @cached_property
    def text(self) -> str:
        return ", ".join((self.ptype, *self.values))


@dataclass(frozen=True)
class Decision:
    """The outcome of one request.

    `allowed` is exactly what pycasbin's `enforce` returns; `matched` holds the
    rule(s) that decided (pycasbin's `enforce_ex` explanation, or the deny rule
    that overrode), empty when no rule matched.
    """

    allowed: bool
    matched: tuple[MatchedRule, ...] = ()


@dataclass(frozen=True)
class EnforceContext:
    """Which request, policy, effect and matcher definitions a request uses (pycasbin's).

    Pass it as the first value: `engine.enforce(EnforceContext.of("2"), sub, obj, act)`
    decides with `r2`, `p2` and `m2`. As in pycasbin, the effect always comes from `e`.
    """

    rtype: str = "r"
    ptype: str = "p"
    etype: str = "e"
    mtype: str = "m"

    @classmethod
    def of(cls, suffix: str) -> EnforceContext:
        return cls(f"r{suffix}", f"p{suffix}", f"e{suffix}", f"m{suffix}")
