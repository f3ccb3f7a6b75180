"""Every matcher of a model, parsed as the engine will run it, checked before anything is stored.

For each `m*` of the model, with the request and policy types it reads (its
own family, `m2` with `r2`/`p2`, or `r`/`p`):

- the text parses (after Casbin's rewrites) as one expression, and so does
  each distinct text it becomes once a rule's `eval()` field is put in;
- every name is a request field of its request type, a rule field of its
  policy type, or a function (a built-in, a role definition `g*`, or
  list/tuple/dict/set) that is called directly; a function passed around as a
  value would hide which function runs;
- `eval(...)` names exactly one rule field;
- the pattern functions (regexMatch, keyMatch2-5, ipMatch) get two arguments,
  and their pattern argument comes from the rules (a field, or fields and
  string literals joined with `+`) or is a literal: never from the request.

Which rule values reach a pattern argument, and which fields `eval()` runs,
is handed to the lint (`MatcherUses`), wherever in the expression the call
appears: nested, parenthesised, negated, inside another call.
"""

from __future__ import annotations

import ast
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

from policy_engine.bundle.loader import MODEL_FILE, POLICY_FILE
from policy_engine.bundle.model_text import ModelLayout
from policy_engine.engine import MatchedRule
from policy_engine.engine.functions import BUILTIN_FUNCTIONS
from policy_engine.engine.matcher import (
    eval_arguments,
    escape_assertion,
    has_eval,
    rewrite_operators,
    substitute_evals,
)
from policy_engine.engine.model import Model
from policy_engine.errors import Problem

__all__ = ["PATTERN_ARGUMENT_FUNCTIONS", "EvalUse", "MatcherUses", "PatternUse", "check_matchers"]

PATTERN_ARGUMENT_FUNCTIONS = frozenset(
    {"regexMatch", "keyMatch2", "keyMatch3", "keyMatch4", "keyMatch5", "ipMatch"}
)
_COMPOUND = frozenset({"list", "tuple", "dict", "set"})
_FAMILY = re.compile(r"^([rp]\d*)_")


@dataclass(frozen=True)
class PatternUse:
    """A pattern argument: built from rule fields (indexes) and literal strings, in order."""

    function: str
    matcher: str
    line: int | None  # of the matcher in model.conf
    ptype: str
    parts: tuple[int | str, ...]

    def value(self, values: Sequence[str]) -> str | None:
        """The pattern a rule gives; None when the rule is too short to have it."""
        if any(isinstance(p, int) and p >= len(values) for p in self.parts):
            return None
        return "".join(values[p] if isinstance(p, int) else p for p in self.parts)

    @property
    def literal(self) -> bool:
        return all(isinstance(p, str) for p in self.parts)


@dataclass(frozen=True)
class EvalUse:
    """A rule field that `eval()` runs as a condition over the given request fields."""

    matcher: str
    ptype: str
    index: int
    request_tokens: tuple[str, ...]


@dataclass
class MatcherUses:
    problems: list[Problem] = field(default_factory=list)
    patterns: list[PatternUse] = field(default_factory=list)
    evals: list[EvalUse] = field(default_factory=list)


def check_matchers(model: Model, rules: Sequence[MatchedRule], layout: ModelLayout) -> MatcherUses:
    """Parse and check every matcher of `model` against its rules."""
    uses = MatcherUses()
    functions = frozenset(BUILTIN_FUNCTIONS) | frozenset(model.roles) | _COMPOUND
    for key, text in model.matchers.items():
        _Matcher(key, text, model, rules, functions, layout.line_of("matchers", key), uses).check()
    return uses


class _Matcher:
    def __init__(  # noqa: PLR0913
        self,
        key: str,
        text: str,
        model: Model,
        rules: Sequence[MatchedRule],
        functions: frozenset[str],
        line: int | None,
        uses: MatcherUses,
    ) -> None:
        self.key = key
        self.text = text
        self.model = model
        self.rules = rules
        self.functions = functions
        self.line = line
        self.uses = uses

    def problem(self, message: str) -> None:
        self.uses.problems.append(Problem(MODEL_FILE, f"matcher {self.key}: {message}", self.line))

    def check(self) -> None:
        evals = eval_arguments(self.text) if has_eval(self.text) else []
        template = substitute_evals(self.text, ["True"] * len(evals)) if evals else self.text
        node, error = _parse(rewrite_operators(template))
        if node is None:
            self.problem(f"does not parse: {error}")
            return
        rtype, ptype = self.types(node)
        if rtype is None or ptype is None:
            return
        request_tokens = self.model.requests[rtype]
        rule_tokens = self.model.policies[ptype]
        self.check_names(node, set(request_tokens), {t: i for i, t in enumerate(rule_tokens)}, ptype)
        if evals:
            self.check_evals(evals, ptype, rule_tokens, request_tokens)

    def types(self, node: ast.expr) -> tuple[str | None, str | None]:
        """The request and policy types this matcher reads (its own suffix when it reads none)."""
        suffix = self.key[1:]
        read: dict[str, str] = {}
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and (family := _FAMILY.match(sub.id)):
                read.setdefault(family.group(1)[0], family.group(1))
        chosen: list[str | None] = []
        for kind, defined, section in (
            ("r", self.model.requests, "request_definition"),
            ("p", self.model.policies, "policy_definition"),
        ):
            own = f"{kind}{suffix}"
            name = read.get(kind) or (own if own in defined else kind)
            if name not in defined:
                self.problem(f"reads {name}, which [{section}] does not define")
                chosen.append(None)
            else:
                chosen.append(name)
        return chosen[0], chosen[1]

    def check_names(self, node: ast.expr, request: set[str], rule: dict[str, int], ptype: str) -> None:
        callees = set()
        for sub in ast.walk(node):
            if isinstance(sub, ast.Call):
                callee = sub.func
                if isinstance(callee, ast.Name):
                    callees.add(id(callee))
                    if callee.id not in self.functions:
                        self.problem(f"calls undefined function {callee.id}()")
                    elif callee.id in PATTERN_ARGUMENT_FUNCTIONS:
                        self.pattern_call(sub, rule, ptype)
                elif not isinstance(callee, ast.Attribute):
                    self.problem(f"calls a computed function ({ast.unparse(callee)}); call functions by name")
        for sub in ast.walk(node):
            if not isinstance(sub, ast.Name) or sub.id in request or sub.id in rule:
                continue
            if id(sub) in callees:
                continue
            if sub.id in self.functions:
                self.problem(f"uses function {sub.id} as a value; call it directly")
            else:
                self.problem(f"reads undefined name {_author_name(sub.id)}")

    def pattern_call(self, call: ast.Call, rule: dict[str, int], ptype: str) -> None:
        name = call.func.id  # type: ignore[attr-defined]
        if len(call.args) != 2 or call.keywords or any(isinstance(a, ast.Starred) for a in call.args):
            self.problem(f"{name}() takes exactly two arguments (key, pattern): {ast.unparse(call)}")
            return
        parts = _pattern_parts(call.args[1], rule)
        if parts is None:
            self.problem(
                f"the pattern of {name}() must come from the rules (p.* fields and string literals "
                f"joined with +), not {ast.unparse(call.args[1])}: a request must not choose the pattern"
            )
            return
        self.uses.patterns.append(PatternUse(name, self.key, self.line, ptype, parts))

    def check_evals(
        self, names: list[str], ptype: str, rule_tokens: Sequence[str], request_tokens: Sequence[str]
    ) -> None:
        positions = []
        for raw in names:
            if raw not in rule_tokens:
                self.problem(f"eval({raw}) must name one field of {ptype} exactly, like eval({ptype}.cond)")
                return
            positions.append(rule_tokens.index(raw))
        for position in dict.fromkeys(positions):
            self.uses.evals.append(EvalUse(self.key, ptype, position, tuple(request_tokens)))
        own = [r for r in self.rules if r.ptype == ptype]
        if not own:
            if any(r.ptype.startswith("p") for r in self.rules):  # else: "no policy rules" says it
                self.problem(f"uses eval() but there are no {ptype} rules (every request would fail)")
            return
        parsed: set[tuple[str, ...]] = set()
        for rule in own:
            if any(at >= len(rule.values) for at in positions):
                continue
            texts = tuple(escape_assertion(rule.values[at]) for at in positions)
            if texts in parsed:
                continue
            parsed.add(texts)
            node, error = _parse(rewrite_operators(substitute_evals(self.text, texts)))
            if node is None:
                self.uses.problems.append(
                    Problem(
                        POLICY_FILE,
                        f"with this rule's eval() text, matcher {self.key} does not parse: {error}",
                        rule.line,
                    )
                )


def _parse(text: str) -> tuple[ast.expr | None, str]:
    """One expression, or why not (the engine would fail every request on it)."""
    if not text.strip():
        return None, "it is empty"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.parse(text.strip(), mode="eval").body, ""
    except SyntaxError as exc:
        return None, f"{exc.msg} in {text.strip()!r}"
    except (ValueError, RecursionError, MemoryError) as exc:
        return None, str(exc)


def _pattern_parts(node: ast.expr, rule: dict[str, int]) -> tuple[int | str, ...] | None:
    if isinstance(node, ast.Name) and node.id in rule:
        return (rule[node.id],)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return (node.value,)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _pattern_parts(node.left, rule), _pattern_parts(node.right, rule)
        if left is not None and right is not None:
            return left + right
    return None


def _author_name(name: str) -> str:
    family = _FAMILY.match(name)
    return f"{family.group(1)}.{name[family.end():]}" if family else name
