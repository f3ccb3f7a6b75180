"""Differential tests: every hand-written fixture family decides exactly as pycasbin."""

from __future__ import annotations

import pytest

from policy_engine.engine import Engine
from policy_engine.errors import EngineError

from .fixtures import family_names, load_family
from .oracle import assert_same, expected_outcome, oracle


@pytest.mark.parametrize("name", family_names())
def test_family_matches_pycasbin(name: str) -> None:
    """Each request of the family gets pycasbin's allow/deny, explanation rule, or an error."""
    family = load_family(name)
    try:
        enforcer = oracle(family.model, family.policy)
    except Exception:  # noqa: BLE001 - pycasbin refuses the texts: so must the engine
        with pytest.raises(EngineError):
            Engine.from_text(family.model, family.policy)
        return
    engine = Engine.from_text(family.model, family.policy)
    assert family.requests, "a family needs requests"
    for values in family.requests:
        assert_same(engine, enforcer, values)


def test_families_are_not_trivial() -> None:
    """Across the families, pycasbin allows some requests, denies some and raises on some."""
    kinds: set[object] = set()
    for name in family_names():
        family = load_family(name)
        try:
            enforcer = oracle(family.model, family.policy)
        except Exception:  # noqa: BLE001, S112 - load failures are covered above
            continue
        for values in family.requests:
            outcome = expected_outcome(enforcer, values)
            kinds.add(outcome[1] if outcome[0] == "ok" else "error")
    assert kinds == {True, False, "error"}
