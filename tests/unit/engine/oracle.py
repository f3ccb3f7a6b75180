"""pycasbin as the oracle: build an Enforcer from the same texts, compare outcomes."""

from __future__ import annotations

from typing import Any

import casbin
from casbin.core_enforcer import EnforceContext as CasbinContext
from casbin.persist.adapter import Adapter, load_policy_line

from policy_engine.engine import EnforceContext, Engine
from policy_engine.errors import EngineError


class TextAdapter(Adapter):
    """Loads policy text line by line, as pycasbin's file adapter does."""

    def __init__(self, text: str) -> None:
        self.text = text

    def load_policy(self, model: Any) -> None:
        for line in self.text.split("\n"):
            load_policy_line(line.strip(), model)


def oracle(model_text: str, policy_text: str) -> casbin.Enforcer:
    """A pycasbin Enforcer loaded the way a user would load these texts."""
    model = casbin.model.Model()
    model.load_model_from_text(model_text)
    return casbin.Enforcer(model, TextAdapter(policy_text))


def _casbin_values(values: tuple[Any, ...]) -> tuple[Any, ...]:
    if values and isinstance(values[0], EnforceContext):
        c = values[0]
        return (CasbinContext(c.rtype, c.ptype, c.etype, c.mtype), *values[1:])
    return values


def expected_outcome(enforcer: casbin.Enforcer, values: tuple[Any, ...]) -> tuple[Any, ...]:
    """("ok", allowed, explanation) or ("error",) from pycasbin."""
    try:
        allowed, rule = enforcer.enforce_ex(*_casbin_values(values))
    except Exception:  # noqa: BLE001 - any pycasbin failure is an error outcome
        return ("error",)
    return ("ok", allowed, tuple(rule))


def actual_outcome(engine: Engine, values: tuple[Any, ...], *, cached: bool = False) -> tuple[Any, ...]:
    """The same shape from the engine; only EngineError counts as an error."""
    try:
        decision = engine.decide(*values) if cached else engine.decide_uncached(*values)
    except EngineError:
        return ("error",)
    return ("ok", decision.allowed, decision)


def assert_same(engine: Engine, enforcer: casbin.Enforcer, values: tuple[Any, ...]) -> None:
    """Engine and pycasbin agree on allow/deny/error, and on pycasbin's explanation rule."""
    expected = expected_outcome(enforcer, values)
    for cached in (False, True):
        actual = actual_outcome(engine, values, cached=cached)
        assert actual[0] == expected[0], (values, expected, actual)
        if expected[0] == "error":
            continue
        assert actual[1] == expected[1], (values, expected, actual)
        explanation = expected[2]
        decision = actual[2]
        if explanation:
            assert decision.matched, (values, expected, decision)
            assert decision.matched[0].values == explanation, (values, expected, decision)
