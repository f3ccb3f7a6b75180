"""Role graphs whose names or domains are matched by a function, as pycasbin's managers answer.

pycasbin (`add_named_matching_func`, `add_named_domain_matching_func`) keeps a
graph of role nodes that it grows while it answers:

* loading a link `g, a, b` creates the nodes `a` and `b`; a node created for a
  name copies the roles of every existing node whose name, read as a pattern,
  matches it, and the users of such a pattern node get the new node as a role;
  then every existing node matched by the pattern `a` gets the role `b`, and
  the node `b` gets as roles every existing node its own name matches;
* `has_link(n1, n2)` first creates the nodes `n1` then `n2` the same way, then
  walks from `n1`: true when `n2` is within 9 links (10 levels, `level <= 0`).
* a domain manager keeps one such graph per request domain, built from the
  links of that domain followed by the links of every other domain whose name,
  read as a pattern, matches it (domains in order of first appearance).

pycasbin keeps the nodes its queries created, so its answers can depend on
which requests came before (a request value that is itself a pattern, `*` or
`.*`, adds a node later names match). The engine answers every query on the
graph as loaded, i.e. as a freshly loaded pycasbin enforcer answers its first
query; the service refuses wildcard characters in request values, where the
two could differ.

Matching functions are called as `fn(name, pattern)`; an exception counts as
no match (pycasbin's `match_error_handler`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from policy_engine.engine.functions import (
    KEY_FORMS,
    PATTERN_FUNCTIONS,
    builtin_name,
    literal_prefix,
    pattern_is_valid,
)

__all__ = ["PatternRoleGraph", "safe_matcher"]

PREFIX_FUNCTIONS = PATTERN_FUNCTIONS | {"keyMatch"}

_MAX_DEPTH = 9  # pycasbin RoleManager: 10 levels, checked with `level <= 0`
_CACHE_LIMIT = 65536

Matcher = Callable[[Any, Any], bool]


def safe_matcher(fn: Callable[..., Any]) -> Matcher:
    """`fn(name, pattern)` with pycasbin's error handling: any exception is no match."""

    def matches(name: Any, pattern: Any) -> bool:
        try:
            return bool(fn(name, pattern))
        except Exception:  # noqa: BLE001 - pycasbin swallows every matching error
            return False

    return matches


@dataclass(frozen=True)
class _Reach:
    """What one query name reaches: names by their first depth, and the roles of every node
    seen within 8 links (a node created for a new target name hangs below those)."""

    depths: dict[Any, int]
    near_roles: frozenset[Any]
    virtual: bool  # the query name was not a node: the walk used its would-be node


def _pattern_prefix(function: str, pattern: Any) -> str | None:
    """The literal prefix every name `pattern` matches starts with (in its KEY_FORMS form), or
    None when there is none to rely on (not a string, or a pattern the function refuses)."""
    if type(pattern) is not str or not pattern_is_valid(function, pattern):
        return None
    if function == "keyMatch":
        star = pattern.find("*")
        return pattern if star == -1 else pattern[:star]
    return literal_prefix(function, pattern)


class _PrefixTable:
    """Nodes by the literal prefix of their name read as a built-in pattern: a name can only
    match nodes whose prefix it starts with (functions.literal_prefix), so a query tests
    those and the few nodes without a usable prefix, not every node."""

    def __init__(self, function: str, nodes: Iterable[Any]) -> None:
        self.form = KEY_FORMS.get(function)
        self.by_prefix: dict[str, list[Any]] = {}
        self.always: list[Any] = []
        for node in nodes:
            prefix = _pattern_prefix(function, node)
            if prefix is None:
                self.always.append(node)
            else:
                self.by_prefix.setdefault(prefix, []).append(node)
        self.lengths = sorted({len(prefix) for prefix in self.by_prefix})

    def candidates(self, name: Any) -> list[Any]:
        if not isinstance(name, str):
            return [*(n for group in self.by_prefix.values() for n in group), *self.always]
        key = self.form(name) if self.form is not None else name
        found = list(self.always)
        for length in self.lengths:
            if length > len(key):
                break
            group = self.by_prefix.get(key[:length])
            if group is not None:
                found.extend(group)
        return found


class _Graph:
    """One pycasbin RoleManager with a matching function, replayed from its links."""

    def __init__(
        self, links: Iterable[tuple[Any, Any]], match: Matcher | None, builtin: str | None
    ) -> None:
        self.match = match
        self.roles: dict[Any, set[Any]] = {}  # node -> its roles (insertion order = pycasbin's)
        self.users: dict[Any, set[Any]] = {}
        # While loading, a built-in pattern is only tried on names that start with its prefix.
        self._builtin = builtin if builtin in PREFIX_FUNCTIONS else None
        self._form = KEY_FORMS.get(builtin or "")
        self._prefixes: dict[Any, str | None] = {}
        for user, role in links:
            self._link(user, role)
        self._matched: dict[Any, tuple[Any, ...]] = {}
        self._table = (
            _PrefixTable(builtin, self.roles)
            if match is not None and builtin in PREFIX_FUNCTIONS
            else None
        )

    def _node(self, name: Any) -> None:
        """pycasbin's `_get_role`: a new node copies each matching pattern node (its roles
        become the node's, its users get the node); patterns are found before it exists."""
        if name in self.roles:
            return
        match = self.match
        patterns = (
            [p for p in self.roles if self._may_match(name, p) and match(name, p)]
            if match is not None
            else []
        )
        self.roles[name] = set()
        self.users[name] = set()
        for pattern in patterns:
            for role in list(self.roles[pattern]):
                self._edge(name, role)
            for user in list(self.users[pattern]):  # `name` too when the pattern links itself
                self._edge(user, name)

    def _edge(self, user: Any, role: Any) -> None:
        self.roles[user].add(role)
        self.users[role].add(user)

    def _link(self, user: Any, role: Any) -> None:
        self._node(user)
        self._node(role)
        self._edge(user, role)
        if self.match is None:
            return
        for other in list(self.roles):
            if other != user and self._may_match(other, user) and self.match(other, user):
                self._edge(other, role)
            if other != role and self._may_match(other, role) and self.match(other, role):
                self._edge(role, other)

    def _may_match(self, name: Any, pattern: Any) -> bool:
        """False only when `name` cannot match `pattern` (it lacks the pattern's prefix)."""
        if self._builtin is None or type(name) is not str:
            return True
        if pattern in self._prefixes:
            prefix = self._prefixes[pattern]
        else:
            prefix = self._prefixes[pattern] = _pattern_prefix(self._builtin, pattern)
        if prefix is None:
            return True
        return (name if self._form is None else self._form(name)).startswith(prefix)

    def matched(self, name: Any) -> tuple[Any, ...]:
        """Existing nodes whose name, as a pattern, matches `name` (cached)."""
        found = self._matched.get(name)
        if found is None:
            match = self.match
            if match is None:
                found = ()
            elif self._table is None:
                found = tuple(p for p in self.roles if match(name, p))
            else:
                found = tuple(p for p in self._table.candidates(name) if match(name, p))
            if len(self._matched) >= _CACHE_LIMIT:
                self._matched.clear()
            self._matched[name] = found
        return found

    def reach(self, start: Any) -> _Reach:
        virtual = start not in self.roles
        start_roles: set[Any] = set()
        start_users: set[Any] = set()
        if virtual:
            for pattern in self.matched(start):
                start_roles |= self.roles[pattern]
                start_users |= self.users[pattern]
                if pattern in self.roles[pattern]:  # the copy links the new node to itself
                    start_roles.add(start)
                    start_users.add(start)
        depths = {start: 0}
        near: set[Any] = set()
        frontier = [start]
        for depth in range(1, _MAX_DEPTH + 1):
            following: list[Any] = []
            for node in frontier:
                if virtual and node == start:
                    roles: Iterable[Any] = start_roles
                elif virtual and node in start_users:
                    roles = (*self.roles[node], start)
                else:
                    roles = self.roles[node]
                near.update(roles)  # `node` is within 8 links: a new target may hang below
                for role in roles:
                    if role not in depths:
                        depths[role] = depth
                        following.append(role)
            if not following:
                break
            frontier = following
        return _Reach(depths, frozenset(near), virtual)

    def has_link(self, start: Any, target: Any, reach: _Reach) -> bool:
        if start == target:
            return True
        if target in self.roles:
            return target in reach.depths
        patterns = self.matched(target)
        if any(p in reach.near_roles for p in patterns):
            return True
        return (
            reach.virtual
            and start in reach.near_roles
            and self.match is not None
            and self.match(target, start)
        )


class PatternRoleGraph:
    """A `g*` definition answered by pycasbin's RoleManager/DomainManager with matching functions.

    `links` are (user, role, domain) in rule order, domain "" without a domain field.
    """

    exact_closures = False  # the index asks `reaching(universe)` instead of closures

    def __init__(
        self,
        links: Sequence[tuple[str, str, str]],
        *,
        domain_aware: bool,
        name_match: Callable[..., Any] | None,
        domain_match: Callable[..., Any] | None,
    ) -> None:
        self.domain_aware = domain_aware
        self._name_match = None if name_match is None else safe_matcher(name_match)
        self._builtin = None if name_match is None else builtin_name(name_match)
        self._domain_match = (
            None if domain_match is None or not domain_aware else safe_matcher(domain_match)
        )
        by_domain: dict[str, list[tuple[str, str]]] = {}
        for user, role, domain in links:
            by_domain.setdefault(domain if domain_aware else "", []).append((user, role))
        self._links = by_domain
        self._graphs: dict[str, _Graph] = {}
        self._reaches: dict[tuple[Any, str], _Reach] = {}
        self.role_count = len({name for pairs in by_domain.values() for pair in pairs for name in pair})

    def _graph(self, domain: str) -> _Graph:
        graph = self._graphs.get(domain)
        if graph is None:
            links = list(self._links.get(domain, ()))
            if self._domain_match is not None:
                for other, pairs in self._links.items():
                    if other != domain and self._domain_match(domain, other):
                        links.extend(pairs)
            graph = _Graph(links, self._name_match, self._builtin)
            if len(self._graphs) >= _CACHE_LIMIT:
                self._graphs.clear()
            self._graphs[domain] = graph
        return graph

    def _reach(self, graph: _Graph, name: Any, domain: str) -> _Reach:
        key = (name, domain)
        reach = self._reaches.get(key)
        if reach is None:
            reach = graph.reach(name)
            if len(self._reaches) >= _CACHE_LIMIT:
                self._reaches.clear()
            self._reaches[key] = reach
        return reach

    def has_link(self, *args: Any) -> bool:
        """The `g(...)` matcher function, with pycasbin's argument handling."""
        name1 = args[0]
        name2 = args[1]
        domain = str(args[2]) if len(args) > 2 and self.domain_aware else ""
        hash(name1)  # pycasbin keeps nodes in a dict: unhashable values raise
        hash(name2)
        graph = self._graph(domain)
        return graph.has_link(name1, name2, self._reach(graph, name1, domain))

    def reaching(self, universe: Iterable[str]) -> Callable[[str, str], tuple[str, ...]]:
        """For the index: `(name, domain) -> every value of `universe` that g(name, value,
        domain) accepts`, exactly."""
        values = frozenset(universe)
        answers: dict[tuple[str, str], tuple[str, ...]] = {}
        unknown: dict[str, tuple[Any, ...]] = {}  # per domain: values that are not graph nodes

        def names(name: str, domain: str) -> tuple[str, ...]:
            key = (name, domain if self.domain_aware else "")
            found = answers.get(key)
            if found is None:
                graph = self._graph(key[1])
                reach = self._reach(graph, name, key[1])
                new = unknown.get(key[1])
                if new is None:
                    new = unknown[key[1]] = tuple(v for v in values if v not in graph.roles)
                reached = {v for v in reach.depths if v in values}
                reached.update(v for v in new if graph.has_link(name, v, reach))
                found = tuple(reached)
                if len(answers) >= _CACHE_LIMIT:
                    answers.clear()
                answers[key] = found
            return found

        return names

    function = has_link
