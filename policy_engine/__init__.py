"""policy-engine: authorization decisions for LLM backends.

The engine is also a library: `Engine` answers `enforce(*values)` exactly as
pycasbin does, with pycasbin's names for the rest (`enforce_ex`,
`batch_enforce`, `EnforceContext`, `add_named_matching_func`, ...), so a
Python backend can embed it in-process.
"""

from policy_engine.engine import Decision, EnforceContext, Engine, Entity, MatchedRule
from policy_engine.errors import (
    EngineError,
    EvaluationError,
    ModelError,
    PolicyEngineError,
    PolicyLoadError,
    RequestError,
)

__all__ = [
    "Decision",
    "EnforceContext",
    "Engine",
    "EngineError",
    "Entity",
    "EvaluationError",
    "MatchedRule",
    "ModelError",
    "PolicyEngineError",
    "PolicyLoadError",
    "RequestError",
]
