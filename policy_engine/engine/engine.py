"""Engine: pycasbin's enforcer API over a model and rules compiled once.

    engine = Engine.from_text(model_text, policy_text)
    engine.add_named_matching_func("g2", "keyMatch2")             # setup, before deciding
    engine.enforce("alice", "acme", "tool:web_search", "invoke")   # -> bool
    engine.enforce_ex(...)                                         # -> (bool, rule values)
    engine.decide(...)                                             # -> Decision (with the rule)

The names are pycasbin's (`enforce`, `enforce_ex`, `batch_enforce`,
`new_enforce_context`, `add_function`, `add_named_matching_func`,
`add_named_domain_matching_func`, `add_named_link_condition_func`,
`add_named_domain_link_condition_func`) and take what pycasbin's take: a
callable, pycasbin's own `casbin.util` functions included. Built-in functions
(recognised by identity or by name, see functions.builtin_name) keep the rule
index working; other callables are called as given.

The add_* methods are setup calls: each one recompiles the matchers and
empties the decision cache. Make them before sharing the Engine; once
deciding, an Engine is immutable: share it across threads and asyncio tasks,
and swap policy versions by assigning a new Engine to one reference.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import cached_property
from pathlib import Path
from typing import Any

from policy_engine.engine.cache import DecisionCache, FailedEvaluation, cache_key
from policy_engine.engine.compiled import CompiledMatcher
from policy_engine.engine.functions import (
    BUILTIN_FUNCTIONS,
    NONDETERMINISTIC_FUNCTIONS,
    builtin_name,
)
from policy_engine.engine.model import Model, RoleKind, parse_model
from policy_engine.engine.pattern_roles import PatternRoleGraph
from policy_engine.engine.roles import ConditionalRoleGraph, GraphKind, RoleGraph
from policy_engine.engine.rules import LoadedRules, load_rules
from policy_engine.engine.types import Decision, EnforceContext, Entity, MatchedRule
from policy_engine.errors import EvaluationError, RequestError

__all__ = ["DEFAULT_CACHE_SIZE", "Engine"]

DEFAULT_CACHE_SIZE = 100_000
_COMPOUND = {"list": list, "tuple": tuple, "dict": dict, "set": set}
_CONDITIONAL_KINDS = (RoleKind.CONDITIONAL, RoleKind.CONDITIONAL_DOMAIN)
_CONDITIONAL_GRAPHS = (GraphKind.CONDITIONAL, GraphKind.CONDITIONAL_DOMAIN)

AnyGraph = RoleGraph | PatternRoleGraph | ConditionalRoleGraph


def _function(fn: Callable[..., Any] | str) -> Callable[..., Any]:
    """A callable as given, or a built-in by its matcher name (`"keyMatch2"`); built-ins given
    as callables (pycasbin's too) become ours."""
    if isinstance(fn, str):
        if fn not in BUILTIN_FUNCTIONS:
            raise ValueError(f"unknown built-in function {fn!r}")
        return BUILTIN_FUNCTIONS[fn]
    if not callable(fn):
        raise TypeError(f"expected a callable, got {type(fn).__name__}")
    name = builtin_name(fn)
    return fn if name is None else BUILTIN_FUNCTIONS[name]


def _context_of(value: Any) -> EnforceContext | None:
    """An EnforceContext, ours or pycasbin's (any object with rtype/ptype/etype/mtype)."""
    if isinstance(value, EnforceContext):
        return value
    if isinstance(value, str):
        return None
    try:
        return EnforceContext(value.rtype, value.ptype, value.etype, value.mtype)
    except AttributeError:
        return None


def _is_context(value: Any) -> bool:
    """`_context_of(value) is not None`, without a call for the usual string values."""
    kind = type(value)
    return kind is not str and kind is not Entity and _context_of(value) is not None


class _Setup:
    """What the add_* calls registered: per-definition matching and link condition functions."""

    def __init__(self) -> None:
        self.name_matchers: dict[str, Callable[..., Any]] = {}
        self.domain_matchers: dict[str, Callable[..., Any]] = {}
        self.conditions: dict[str, dict[tuple[str, str, str], Callable[..., Any]]] = {}
        self.params: dict[str, dict[tuple[str, str, str], tuple[str, ...]]] = {}
        self.functions: dict[str, Callable[..., Any]] = {}


def _role_graphs(model: Model, rules: LoadedRules, setup: _Setup) -> dict[str, AnyGraph]:
    conditional = any(d.kind in _CONDITIONAL_KINDS for d in model.roles.values())
    graphs: dict[str, AnyGraph] = {}
    for key, definition in model.roles.items():
        with_domain = definition.field_count >= 3
        kind = GraphKind.of(definition.kind, conditional)
        group = rules.groupings[key]
        links = [(r.values[0], r.values[1], r.values[2] if with_domain else "") for r in group]
        if kind in _CONDITIONAL_GRAPHS and setup.conditions.get(key):
            tokens, fields = definition.token_count, definition.field_count
            graphs[key] = ConditionalRoleGraph(
                [
                    (r.values[0], r.values[1], r.values[2] if tokens > 2 else "",
                     tuple(r.values[tokens:fields]))
                    for r in group
                ],
                setup.conditions[key],
                domain_aware=kind is GraphKind.CONDITIONAL_DOMAIN,
                params=setup.params.get(key, {}),
            )  # fmt: skip
        elif kind in (GraphKind.PLAIN, GraphKind.DOMAIN) and (
            key in setup.name_matchers or key in setup.domain_matchers
        ):
            graphs[key] = PatternRoleGraph(
                links,
                domain_aware=kind is GraphKind.DOMAIN,
                name_match=setup.name_matchers.get(key),
                domain_match=setup.domain_matchers.get(key),
            )
        else:
            graphs[key] = RoleGraph(kind, links)
    return graphs


class Engine:
    """Decides requests against one model and one set of rules, exactly as pycasbin."""

    def __init__(
        self,
        model_text: str,
        policy_text: str = "",
        *,
        cache_size: int = DEFAULT_CACHE_SIZE,
        policy_file: str | None = None,
    ) -> None:
        """`policy_file` names the policy text in error messages (`policy.csv:12`)."""
        self._policy_file = policy_file
        self._model = parse_model(model_text)
        self._rules = load_rules(policy_text, self._model)
        self._cache_size = cache_size
        self._setup = _Setup()
        self.rule_count: int = self._rules.count
        self.request_tokens: tuple[str, ...] = tuple(
            token.removeprefix("r_") for token in self._model.requests["r"]
        )
        self.role_names: frozenset[str] = frozenset(
            rule.values[1] for group in self._rules.groupings.values() for rule in group
        )
        self._compile()

    def _compile(self) -> None:
        """(Re)build role graphs, the function table and the default matcher; empty the cache."""
        self._graphs = _role_graphs(self._model, self._rules, self._setup)
        self._functions: dict[str, Any] = dict(BUILTIN_FUNCTIONS)
        self._functions.update(self._setup.functions)
        self._functions.update({key: graph.has_link for key, graph in self._graphs.items()})
        self._functions.update(_COMPOUND)
        self._matchers: dict[tuple[str, str, str], CompiledMatcher] = {}
        self._default = self._matcher(EnforceContext())
        self._cache = (
            DecisionCache(self._cache_size)
            if self._cache_size > 0 and self._default.cacheable
            else None
        )

    # ---------------------------------------------------------------- pycasbin's setup calls

    def add_function(self, name: str, fn: Callable[..., Any]) -> None:
        """pycasbin's `add_function`: `name(...)` in matchers calls `fn`. A built-in given under
        its own name stays the built-in; any other function turns the decision cache off for
        matchers that call it (its answers may change between calls)."""
        self._setup.functions[name] = _function(fn)
        self._compile()

    def add_named_matching_func(self, ptype: str, fn: Callable[..., Any] | str) -> bool:
        """pycasbin's: names of role definition `ptype` match as patterns (`fn(name, pattern)`),
        e.g. `add_named_matching_func("g2", keyMatch2)`. False (and nothing changes) when
        `ptype` is not a role definition pycasbin gives a plain or domain manager."""
        if not self._has_manager(ptype, conditional=False):
            return False
        self._setup.name_matchers[ptype] = _function(fn)
        self._compile()
        return True

    def add_named_domain_matching_func(self, ptype: str, fn: Callable[..., Any] | str) -> bool:
        """pycasbin's: the links of a domain whose name, as a pattern, matches the request's
        domain apply in that domain too. False when `ptype` has no plain or domain manager."""
        if not self._has_manager(ptype, conditional=False):
            return False
        self._setup.domain_matchers[ptype] = _function(fn)
        self._compile()
        return True

    def add_named_link_condition_func(
        self, ptype: str, user: str, role: str, fn: Callable[..., Any] | str
    ) -> bool:
        """pycasbin's: the link user -> role of conditional definition `ptype` holds only when
        `fn(*params)` is truthy, params being the rule's fields in the definition's `(...)`.
        False when `ptype` is not a conditional role definition."""
        return self.add_named_domain_link_condition_func(ptype, user, role, "", fn)

    def add_named_domain_link_condition_func(
        self, ptype: str, user: str, role: str, domain: str, fn: Callable[..., Any] | str
    ) -> bool:
        """pycasbin's: as add_named_link_condition_func, for the link in `domain`."""
        if not self._has_manager(ptype, conditional=True):
            return False
        self._setup.conditions.setdefault(ptype, {})[(user, role, domain)] = _function(fn)
        self._compile()
        return True

    def set_named_link_condition_func_params(self, ptype: str, user: str, role: str, *params: str) -> bool:
        """pycasbin's: the params the link user -> role passes to its condition (instead of
        the rule's fields). False when `ptype` is not a conditional role definition."""
        return self.set_named_domain_link_condition_func_params(ptype, user, role, "", *params)

    def set_named_domain_link_condition_func_params(
        self, ptype: str, user: str, role: str, domain: str, *params: str
    ) -> bool:
        """pycasbin's: as set_named_link_condition_func_params, for the link in `domain`."""
        if not self._has_manager(ptype, conditional=True):
            return False
        self._setup.params.setdefault(ptype, {})[(user, role, domain)] = tuple(params)
        self._compile()
        return True

    def _has_manager(self, ptype: str, *, conditional: bool) -> bool:
        definition = self._model.roles.get(ptype)
        return definition is not None and (definition.kind in _CONDITIONAL_KINDS) == conditional

    def new_enforce_context(self, suffix: str) -> EnforceContext:
        """pycasbin's: the context for `r<suffix>`, `p<suffix>`, `e<suffix>`, `m<suffix>`."""
        return EnforceContext.of(suffix)

    @classmethod
    def from_text(
        cls,
        model_text: str,
        policy_text: str = "",
        *,
        cache_size: int = DEFAULT_CACHE_SIZE,
        policy_file: str | None = None,
    ) -> Engine:
        """Build from model.conf text and policy text (pycasbin's CSV-like rule lines)."""
        return cls(model_text, policy_text, cache_size=cache_size, policy_file=policy_file)

    @classmethod
    def from_files(
        cls,
        model_path: str | Path,
        policy_path: str | Path | None = None,
        *,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> Engine:
        """Build from a model.conf file and an optional policy file."""
        policy = Path(policy_path).read_text(encoding="utf-8") if policy_path else ""
        return cls(
            Path(model_path).read_text(encoding="utf-8"),
            policy,
            cache_size=cache_size,
            policy_file=str(policy_path) if policy_path else None,
        )

    @property
    def model(self) -> Model:
        return self._model

    @property
    def cache_hit_ratio(self) -> float | None:
        """Share of cacheable lookups answered from the cache; None without a cache or lookups."""
        cache = self._cache
        if cache is None or not (cache.hits + cache.misses):
            return None
        return cache.hits / (cache.hits + cache.misses)

    @cached_property
    def rules(self) -> tuple[MatchedRule, ...]:
        """Every rule (p* and g*) as written, in file order."""
        groups = (*self._rules.policies.values(), *self._rules.groupings.values())
        every = sorted((rule for group in groups for rule in group), key=lambda rule: rule.line)
        return tuple(MatchedRule(rule.ptype, rule.values, rule.line) for rule in every)

    @cached_property
    def misfits(self) -> tuple[MatchedRule, ...]:
        """p* rules whose field count differs from their definition: loaded as pycasbin loads
        them, and a decision whose scan reaches one fails ("invalid policy size")."""
        return tuple(MatchedRule(r.ptype, r.values, r.line) for r in self._rules.misfits)

    @cached_property
    def policy_tokens(self) -> dict[str, tuple[str, ...]]:
        """Field names of each policy type, without the prefix: {"p": ("sub", "obj", "act")}."""
        return {
            ptype: tuple(token.split("_", 1)[1] for token in tokens)
            for ptype, tokens in self._model.policies.items()
        }

    def _volatile(self) -> frozenset[str]:
        """Functions whose answers may change between calls: the clock, any callable that is
        not a built-in, and role graphs that call link conditions or custom matchers."""
        setup = self._setup
        custom = {name for name, fn in setup.functions.items() if builtin_name(fn) is None}

        def custom_matcher(fn: Callable[..., Any] | None) -> bool:
            return fn is not None and builtin_name(fn) is None

        walked = {
            key
            for key, graph in self._graphs.items()
            if isinstance(graph, ConditionalRoleGraph)
            or custom_matcher(setup.name_matchers.get(key))
            or custom_matcher(setup.domain_matchers.get(key))
        }
        return NONDETERMINISTIC_FUNCTIONS | custom | walked

    def _matcher(self, context: EnforceContext) -> CompiledMatcher:
        key = (context.rtype, context.ptype, context.mtype)
        matcher = self._matchers.get(key)
        if matcher is None:
            model = self._model
            try:
                request_tokens = model.requests[context.rtype]
                rule_tokens = model.policies[context.ptype]
                matcher_text = model.matchers[context.mtype]
            except KeyError as exc:
                raise RequestError(f"the model has no definition {exc.args[0]!r}") from exc
            matcher = CompiledMatcher(
                request_tokens=request_tokens,
                rule_tokens=rule_tokens,
                ptype=context.ptype,
                matcher_text=matcher_text,
                rules=self._rules.policies[context.ptype],
                functions=self._functions,
                graphs=self._graphs,
                effect=model.effect,
                volatile=self._volatile(),
                mtype=context.mtype,
                policy_file=self._policy_file,
            )
            self._matchers[key] = matcher  # a lost race builds an identical matcher: harmless
        return matcher

    def _resolve(self, values: tuple[Any, ...]) -> tuple[CompiledMatcher, tuple[Any, ...]]:
        matcher = self._default
        context = _context_of(values[0]) if values else None
        if context is not None:
            matcher = self._matcher(context)
            values = values[1:]
        if len(values) != len(matcher.request_tokens):
            raise RequestError(
                f"expected {len(matcher.request_tokens)} request values "
                f"({', '.join(matcher.request_tokens)}), got {len(values)}"
            )
        return matcher, values

    def enforce(self, *values: Any) -> bool:
        """pycasbin's `enforce`: True when allowed; raises an EngineError where pycasbin raises."""
        return self.decide(*values).allowed

    def enforce_ex(self, *values: Any) -> tuple[bool, list[str]]:
        """pycasbin's `enforce_ex`: the decision and the rule's values that explain it (the last
        rule that matched before the effect stopped the scan), [] when none did."""
        decision = self.decide(*values)
        return decision.allowed, list(decision.matched[0].values) if decision.matched else []

    def batch_enforce(self, requests: Iterable[Iterable[Any]]) -> list[bool]:
        """pycasbin's `batch_enforce`: `enforce(*request)` for each request, in order."""
        return [self.decide(*request).allowed for request in requests]

    def decide(self, *values: Any) -> Decision:
        """The decision with the rule that made it; cached per request when values allow it."""
        if self._cache is None or (values and _is_context(values[0])):
            return self.decide_uncached(*values)
        return self.decide_keyed(cache_key(values), values)

    def decide_keyed(self, key: tuple[Any, ...] | None, values: tuple[Any, ...]) -> Decision:
        """`decide(*values)` where the caller built `key` itself: `cache_key(values)`, or a tuple
        of `key_part(value)` per value (None when a part is None). No EnforceContext here."""
        cache = self._cache
        if cache is None or key is None:
            return self.decide_uncached(*values)
        decision = cache.get(key)
        if decision is None:
            try:
                decision = self.decide_uncached(*values)
            except EvaluationError as exc:
                # As deterministic as a decision (a missing attribute stays missing): remembered too.
                cache.put(key, FailedEvaluation(str(exc)))
                raise
            cache.put(key, decision)
        elif type(decision) is FailedEvaluation:
            raise EvaluationError(decision.message)
        return decision

    def decide_uncached(self, *values: Any) -> Decision:
        """`decide` without the cache (every call evaluates the rules)."""
        matcher = self._default
        if len(values) == len(matcher.request_tokens) and not (values and _is_context(values[0])):
            return matcher.decide(values)
        matcher, request = self._resolve(values)
        return matcher.decide(request)
