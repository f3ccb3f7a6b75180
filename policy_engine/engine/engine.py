"""Engine: pycasbin's `enforce(*values)` over a model and rules compiled once.

An Engine is immutable once built: share it across threads and asyncio
tasks; swap policy versions by assigning a new Engine to one reference. It
owns its decision cache, so a new version starts with an empty one.

    engine = Engine.from_text(model_text, policy_text)
    engine.enforce("alice", "acme", "tool:web_search", "invoke")   # -> bool
    engine.decide(...)                                             # -> Decision (with the rule)
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

from policy_engine.engine.cache import DecisionCache, FailedEvaluation, cache_key
from policy_engine.engine.compiled import CompiledMatcher
from policy_engine.engine.functions import BUILTIN_FUNCTIONS
from policy_engine.engine.model import Model, RoleKind, parse_model
from policy_engine.engine.roles import GraphKind, RoleGraph
from policy_engine.engine.rules import LoadedRules, load_rules
from policy_engine.engine.types import Decision, EnforceContext, MatchedRule
from policy_engine.errors import EvaluationError, RequestError

__all__ = ["DEFAULT_CACHE_SIZE", "Engine"]

DEFAULT_CACHE_SIZE = 100_000
_COMPOUND = {"list": list, "tuple": tuple, "dict": dict, "set": set}


def _role_graphs(model: Model, rules: LoadedRules) -> dict[str, RoleGraph]:
    conditional = any(
        d.kind in (RoleKind.CONDITIONAL, RoleKind.CONDITIONAL_DOMAIN) for d in model.roles.values()
    )
    graphs: dict[str, RoleGraph] = {}
    for key, definition in model.roles.items():
        with_domain = definition.field_count >= 3
        links = (
            (r.values[0], r.values[1], r.values[2] if with_domain else "")
            for r in rules.groupings[key]
        )
        graphs[key] = RoleGraph(GraphKind.of(definition.kind, conditional), links)
    return graphs


class Engine:
    """Decides requests against one model and one set of rules, exactly as pycasbin."""

    def __init__(
        self, model_text: str, policy_text: str = "", *, cache_size: int = DEFAULT_CACHE_SIZE
    ) -> None:
        self._model = parse_model(model_text)
        self._rules = load_rules(policy_text, self._model)
        self._graphs = _role_graphs(self._model, self._rules)
        self._functions: dict[str, Any] = dict(BUILTIN_FUNCTIONS)
        self._functions.update({key: graph.has_link for key, graph in self._graphs.items()})
        self._functions.update(_COMPOUND)
        self._matchers: dict[tuple[str, str, str], CompiledMatcher] = {}
        self._default = self._matcher(EnforceContext())
        self._cache = (
            DecisionCache(cache_size) if cache_size > 0 and self._default.cacheable else None
        )
        self.rule_count: int = self._rules.count
        self.request_tokens: tuple[str, ...] = tuple(
            token.removeprefix("r_") for token in self._model.requests["r"]
        )
        self.role_names: frozenset[str] = frozenset(
            rule.values[1] for group in self._rules.groupings.values() for rule in group
        )

    @classmethod
    def from_text(
        cls, model_text: str, policy_text: str = "", *, cache_size: int = DEFAULT_CACHE_SIZE
    ) -> Engine:
        """Build from model.conf text and policy text (pycasbin's CSV-like rule lines)."""
        return cls(model_text, policy_text, cache_size=cache_size)

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
        return cls(Path(model_path).read_text(encoding="utf-8"), policy, cache_size=cache_size)

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
            )
            self._matchers[key] = matcher  # a lost race builds an identical matcher: harmless
        return matcher

    def _resolve(self, values: tuple[Any, ...]) -> tuple[CompiledMatcher, tuple[Any, ...]]:
        matcher = self._default
        if values and isinstance(values[0], EnforceContext):
            matcher = self._matcher(values[0])
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

    def decide(self, *values: Any) -> Decision:
        """The decision with the rule that made it; cached per request when values allow it."""
        if self._cache is None or (values and isinstance(values[0], EnforceContext)):
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
        if len(values) == len(matcher.request_tokens) and not (
            values and isinstance(values[0], EnforceContext)
        ):
            return matcher.decide(values)
        matcher, request = self._resolve(values)
        return matcher.decide(request)
