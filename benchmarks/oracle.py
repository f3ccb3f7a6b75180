"""pycasbin as the judge of the world's expected decisions (benchmarks/world.py).

pycasbin scans every rule on every request, too slow for 100,000 rules, so the
enforcer for a request is loaded with the rules that can match it: the g lines
of its tenant (the role manager matches domains exactly) and the p lines whose
domain is the tenant or `*` and whose action is the request's (`keyMatch(r.dom,
p.dom)` and `r.act == p.act` are conjuncts of the matcher). The other rules
cannot change the outcome; tests/unit/test_bench_world.py checks this against
an enforcer holding every rule.
"""

from __future__ import annotations

from typing import Any

import casbin
from casbin.persist.adapter import Adapter, load_policy_line

from world import MODEL_CONF, Ask, World

__all__ = ["Oracle", "Value"]


class Value(str):
    """A request value that is its id string and carries attributes (`r.sub.mfa`), as the service binds it."""

    def __new__(cls, id: str, attributes: dict[str, Any]) -> Value:  # noqa: A002
        value = super().__new__(cls, id)
        value.__dict__.update(attributes)
        return value


class _Lines(Adapter):  # type: ignore[misc]
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def load_policy(self, model: Any) -> None:
        for line in self.lines:
            load_policy_line(line, model)


def enforcer(lines: list[str]) -> casbin.Enforcer:
    model = casbin.model.Model()
    model.load_model_from_text(MODEL_CONF)
    return casbin.Enforcer(model, _Lines(lines))


class Oracle:
    """pycasbin's answer to an Ask: the subject, and the actor when there is one, must both be allowed."""

    def __init__(self, world: World, *, whole: bool = False) -> None:
        lines = world.policy_text.splitlines()
        self._whole = enforcer(lines) if whole else None
        self._enforcers: dict[tuple[str, str], casbin.Enforcer] = {}
        self._by_domain: dict[str, list[list[str]]] = {}  # domain -> the fields of its lines
        for line in lines:
            fields = [field.strip() for field in line.split(",")]
            self._by_domain.setdefault(fields[3] if fields[0] == "g" else fields[2], []).append(fields)

    def _for(self, tenant: str, action: str) -> casbin.Enforcer:
        if self._whole is not None:
            return self._whole
        found = self._enforcers.get((tenant, action))
        if found is None:
            kept = [", ".join(fields) for domain in (tenant, "*") for fields in self._by_domain.get(domain, [])
                    if fields[0] == "g" or fields[4] == action]
            found = self._enforcers[(tenant, action)] = enforcer(kept)
        return found

    def allowed(self, ask: Ask) -> bool:
        resource = ask.resource
        obj = Value(resource.key, {**dict(resource.attributes), "kind": resource.kind})
        judge = self._for(ask.tenant, ask.action)
        if not judge.enforce(Value(ask.subject, dict(ask.attributes)), ask.tenant, obj, ask.action):
            return False
        return ask.actor is None or bool(judge.enforce(Value(ask.actor, {}), ask.tenant, obj, ask.action))
