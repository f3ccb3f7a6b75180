"""Role graphs (`g`, `g2`, ...): who inherits which role, per domain, as pycasbin answers it.

pycasbin's managers answer `has_link(name1, name2[, domain])` by a
breadth-first walk that stops after a fixed number of levels:

* RoleManager / DomainManager (`_, _` / `_, _, _`): `name1 == name2`, or
  `name2` within 9 links of `name1` (max_hierarchy_level 10, checked with
  `level <= 0`); a DomainManager keeps one graph per domain and reads the
  domain as `str(args[2])`, "" when absent; a RoleManager ignores it.
* ConditionalRoleManager / ConditionalDomainManager (`(_, _)` parameters):
  the same, within 10 links (`level < 0`). Without condition functions every
  link holds (`RoleGraph`); with them, `ConditionalRoleGraph` walks per query
  and asks each link's function with the link's parameters (the rule's fields
  in the parentheses), as pycasbin's `get_next_roles` does.
* Matching functions (pattern names, pattern domains): pattern_roles.py.
* When a model mixes conditional and plain definitions, pycasbin's plain
  `g` functions become `name1 == name2` (its function table keeps only the
  conditional factory); `RoleKind`s are resolved to `EQUALITY` then.

Cycles are harmless: the walk is bounded by the level count. For string
names the answers come from closures computed once per (domain, name);
other hashable values take an exact walk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from enum import Enum
from typing import Any

from policy_engine.engine.model import RoleKind
from policy_engine.engine.types import Entity

__all__ = ["ConditionalRoleGraph", "GraphKind", "RoleGraph"]

_STRINGS = (str, Entity)


class GraphKind(Enum):
    """How a `g` function answers: which walk depth, whether domains separate graphs."""

    PLAIN = "plain"
    DOMAIN = "domain"
    CONDITIONAL = "conditional"
    CONDITIONAL_DOMAIN = "conditional_domain"
    EQUALITY = "equality"

    @classmethod
    def of(cls, kind: RoleKind, mixed_with_conditional: bool) -> GraphKind:
        if mixed_with_conditional and kind in (RoleKind.PLAIN, RoleKind.DOMAIN):
            return cls.EQUALITY
        return cls(kind.value)


class RoleGraph:
    """An immutable role graph for one `g*` definition, with precomputed closures."""

    exact_closures = True  # names_reaching gives every name g accepts: the index may use it

    def __init__(self, kind: GraphKind, links: Iterable[tuple[str, str, str]]) -> None:
        """`links` are (user, role, domain) with domain "" for definitions without one."""
        self.kind = kind
        self.domain_aware = kind in (GraphKind.DOMAIN, GraphKind.CONDITIONAL_DOMAIN)
        self.max_hops = 10 if kind in (GraphKind.CONDITIONAL, GraphKind.CONDITIONAL_DOMAIN) else 9
        edges: dict[str, dict[str, list[str]]] = {}
        for user, role, domain in links:
            key = domain if self.domain_aware else ""
            targets = edges.setdefault(key, {}).setdefault(user, [])
            if role not in targets:
                targets.append(role)
        self._edges = edges
        # closure[domain][name]: every name reachable within max_hops links, name itself first.
        self._closures: dict[str, dict[str, tuple[str, ...]]] = {
            domain: {name: self._walk(graph, name) for name in graph}
            for domain, graph in edges.items()
        }

    def _walk(self, graph: Mapping[str, list[str]], start: str) -> tuple[str, ...]:
        seen = {start: None}
        frontier = [start]
        for _ in range(self.max_hops):
            following: list[str] = []
            for name in frontier:
                for role in graph.get(name, ()):
                    if role not in seen:
                        seen[role] = None
                        following.append(role)
            if not following:
                break
            frontier = following
        return tuple(seen)

    @property
    def role_count(self) -> int:
        return sum(len(graph) for graph in self._edges.values())

    def names_reaching(self, name: str, domain: str) -> tuple[str, ...]:
        """Every `name2` with `g(name, name2[, domain])` true: name itself and its closure."""
        if self.kind is GraphKind.EQUALITY:
            return (name,)
        closures = self._closures.get(domain)
        if closures is None:
            return (name,)
        return closures.get(name) or (name,)

    def has_link(self, *args: Any) -> bool:
        """The `g(...)` matcher function, with pycasbin's argument handling."""
        name1 = args[0]
        name2 = args[1]
        if self.kind is GraphKind.EQUALITY:
            return name1 == name2
        domain = str(args[2]) if len(args) > 2 else ""
        if not self.domain_aware:
            domain = ""
        if type(name1) in _STRINGS and type(name2) in _STRINGS:
            if name1 == name2:
                return True
            closures = self._closures.get(domain)
            return closures is not None and name2 in closures.get(name1, ())
        return self._walk_any(name1, name2, domain)

    def _walk_any(self, name1: Any, name2: Any, domain: str) -> bool:
        """The exact level walk for arbitrary (hashable) values."""
        conditional = self.kind in (GraphKind.CONDITIONAL, GraphKind.CONDITIONAL_DOMAIN)
        if conditional and name1 == name2:
            return True
        graph = self._edges.get(domain, {})
        hash(name1)  # pycasbin looks both names up in a dict: unhashable values raise
        hash(name2)
        level: Iterable[Any] = [name1]
        for _ in range(self.max_hops + 1):
            following: set[Any] = set()
            for node in level:
                if name2 == node:
                    return True
                following.update(graph.get(node, ()))
            if not following:
                return False
            level = following
        return False

    def function(self) -> Callable[..., bool]:
        """The `g` callable for matchers (a bound method: one per graph)."""
        return self.has_link


class ConditionalRoleGraph:
    """A conditional `g*` definition with link condition functions: walked per query.

    `links` are (user, role, domain, params) in rule order; `conditions` maps
    (user, role, domain) to a function called with the link's params. A
    condition is looked up, like its params, under the query's domain: the
    request domain for `g(a, b, dom)`, "" for `g(a, b)`. A ConditionalDomainManager
    (`domain_aware`) keeps links per domain; a domain without links links nothing.
    """

    exact_closures = False
    max_hops = 10

    def __init__(
        self,
        links: Iterable[tuple[str, str, str, tuple[str, ...]]],
        conditions: Mapping[tuple[str, str, str], Callable[..., Any]],
        *,
        domain_aware: bool,
        params: Mapping[tuple[str, str, str], tuple[str, ...]] | None = None,
    ) -> None:
        """`params` (set_named_*_link_condition_func_params) replace a link's own params."""
        self.kind = GraphKind.CONDITIONAL_DOMAIN if domain_aware else GraphKind.CONDITIONAL
        self.domain_aware = domain_aware
        edges: dict[str, dict[str, list[str]]] = {}
        own: dict[tuple[str, str, str], tuple[str, ...]] = {}
        for user, role, domain, values in links:
            key = domain if domain_aware else ""
            targets = edges.setdefault(key, {}).setdefault(user, [])
            if role not in targets:
                targets.append(role)
            own[(user, role, domain if domain_aware else "")] = values
        own.update(params or {})
        self._edges = edges
        self._params = own
        self._conditions = dict(conditions)
        self.role_count = sum(len(graph) for graph in edges.values())

    def has_link(self, *args: Any) -> bool:
        """The `g(...)` matcher function: pycasbin's conditional walk, conditions included."""
        name1 = args[0]
        name2 = args[1]
        if name1 == name2:
            return True
        domain = str(args[2]) if len(args) > 2 else ""
        hash(name1)
        hash(name2)
        graph = self._edges.get(domain if self.domain_aware else "", {})
        conditions = self._conditions
        seen = {name1}
        frontier = [name1]
        for _ in range(self.max_hops + 1):
            # Every link of the level is asked before the target is looked for: pycasbin asks
            # them in set order, so a condition that raises beside the target may or may not
            # fail its walk; failing it always keeps such a decision a deny.
            following: list[Any] = []
            for node in frontier:
                for role in graph.get(node, ()):
                    condition = conditions.get((node, role, domain))
                    if condition is not None and not condition(
                        *self._params.get((node, role, domain), ())
                    ):
                        continue
                    if role not in seen:
                        seen.add(role)
                        following.append(role)
            if name2 in frontier:
                return True
            if not following:
                return False
            frontier = following
        return False

    def names_reaching(self, name: str, domain: str) -> tuple[str, ...]:
        raise NotImplementedError("conditional links are decided per query, never indexed")

    function = has_link
