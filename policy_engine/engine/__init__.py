"""The decision core: compile a Casbin model and its rules, answer requests exactly as pycasbin.

Pure: imports nothing of policy-engine but `policy_engine.errors`, and never
pycasbin (which is only the test oracle).

    model.py     model.conf text -> typed Model
    rules.py     policy text -> ordered rules (with line numbers)
    matcher.py   the matcher dialect: pycasbin's rewrites, compiled and interpreted evaluation
    functions.py keyMatch, regexMatch, globMatch, ipMatch, timeMatch, ...
    roles.py     role graphs with domains and closures; conditional links
    pattern_roles.py  role graphs whose names or domains match by a function
    effects.py   effect strategies
    compiled.py  CompiledMatcher: the indexed, exact scan
    cache.py     bounded decision cache
    engine.py    Engine: pycasbin's enforcer API (enforce, enforce_ex, add_named_*), plus decide()
"""

from policy_engine.engine.cache import key_part
from policy_engine.engine.engine import Engine
from policy_engine.engine.types import Decision, EnforceContext, Entity, MatchedRule

__all__ = ["Decision", "EnforceContext", "Engine", "Entity", "MatchedRule", "key_part"]
