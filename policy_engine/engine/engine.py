"""Engine: pycasbin's `enforce(*values)` signature over a compiled policy.

TEMPORARY: delegates to pycasbin until the compiled engine (issue 3) lands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import casbin
from casbin.model import Model

from policy_engine.engine.types import Decision, MatchedRule
from policy_engine.errors import EvaluationError, ModelError, PolicyLoadError, RequestError

__all__ = ["Engine"]


def _split_rule_line(line: str) -> list[str]:
    tokens: list[str] = []
    depth = 0
    for c in line:
        if c in "[(":
            depth += 1
        elif c in ")]":
            depth -= 1
        if c == "," and depth == 0:
            tokens.append("")
        elif tokens:
            tokens[-1] += c
        else:
            tokens.append(c)
    return [t.strip() for t in tokens]


class Engine:
    """Decides requests against one model and one set of rules, exactly as pycasbin."""

    def __init__(self, model_text: str, policy_text: str) -> None:
        model = Model()
        try:
            model.load_model_from_text(model_text)
            self._enforcer = casbin.Enforcer(model)
        except Exception as exc:
            raise ModelError(str(exc)) from exc
        self._lines: dict[tuple[str, tuple[str, ...]], int] = {}
        count = 0
        for number, raw in enumerate(policy_text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            tokens = _split_rule_line(line)
            key, values = tokens[0], tokens[1:]
            sec = key[:1]
            if sec not in model.model or key not in model.model[sec]:
                raise PolicyLoadError(f"unknown rule type {key!r}", line=number)
            model.model[sec][key].policy.append(values)
            self._lines.setdefault((key, tuple(values)), number)
            count += 1
        self._enforcer.build_role_links()
        self.rule_count = count
        self.request_tokens: tuple[str, ...] = tuple(model.model["r"]["r"].tokens)
        self.request_tokens = tuple(t.removeprefix("r_") for t in self.request_tokens)
        roles: set[str] = set()
        for ast in model.model.get("g", {}).values():
            roles.update(rule[1] for rule in ast.policy if len(rule) > 1)
        self.role_names = frozenset(roles)

    @classmethod
    def from_text(cls, model_text: str, policy_text: str = "") -> Engine:
        return cls(model_text, policy_text)

    @classmethod
    def from_files(cls, model_path: str | Path, policy_path: str | Path | None = None) -> Engine:
        policy = Path(policy_path).read_text() if policy_path else ""
        return cls(Path(model_path).read_text(), policy)

    def enforce(self, *values: Any) -> bool:
        return self.decide(*values).allowed

    def decide(self, *values: Any) -> Decision:
        if len(values) != len(self.request_tokens):
            raise RequestError(
                f"expected {len(self.request_tokens)} request values, got {len(values)}"
            )
        try:
            allowed, rule = self._enforcer.enforce_ex(*values)
        except Exception as exc:
            raise EvaluationError(str(exc)) from exc
        if not rule:
            return Decision(allowed=allowed)
        matched = MatchedRule("p", tuple(rule), self._lines.get(("p", tuple(rule))))
        return Decision(allowed=allowed, matched=(matched,))
