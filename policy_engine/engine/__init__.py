"""The decision core: compile a Casbin model and its rules, answer requests exactly as pycasbin.

Pure: imports nothing of policy-engine but `policy_engine.errors`.
"""

from policy_engine.engine.engine import Engine
from policy_engine.engine.types import Decision, Entity, MatchedRule

__all__ = ["Decision", "Engine", "Entity", "MatchedRule"]
