"""The public facade exports exactly what it documents."""

from __future__ import annotations

import types

import policy_engine
import policy_engine.errors


def test_all_matches_public_names() -> None:
    """policy_engine.__all__ lists every public name of the facade and nothing else."""
    public = {
        name
        for name, value in vars(policy_engine).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert set(policy_engine.__all__) == public


def test_errors_share_one_base() -> None:
    """Every exported error derives from PolicyEngineError, so callers can catch them all."""
    for name in policy_engine.errors.__all__:
        obj = getattr(policy_engine.errors, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, policy_engine.errors.PolicyEngineError), name
