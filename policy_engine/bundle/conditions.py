"""What rule text an `eval()` matcher may run: a plain condition, nothing more.

The text is read exactly as the engine will run it (Casbin's rewrites: `r.`
becomes `r_`, `&&`/`||`/`!` become `and`/`or`/`not`), then parsed. A plain
condition is, in full:

    condition  := "True"                      the whole text only: no condition
                | clause
    clause     := clause and clause | clause or clause | not clause | ( clause )
                | comparison
    comparison := operand OP operand          exactly one operator, no chains
                | operand [not] in LIST
    OP         := == | != | < | <= | > | >=
    operand    := VALUE | LITERAL
    VALUE      := r.TOKEN(.NAME)*              a request value of the model, or its attributes
    LIST       := [LITERAL, ...] or (LITERAL, ...), non-empty; or a VALUE
    LITERAL    := a string, a number (optionally negative), True or False

and, beyond the grammar:

- every comparison reads at least one request value, and not the same one on
  both sides (`'a' == 'a'`, `r.sub.x == r.sub.x` are constants);
- the literals one value is compared with have one type (no `r.sub.x == 1 or
  r.sub.x == 'a'`);
- no clause is constant: each part must be true for some request and false
  for another (`r.sub.role == 'x' or r.sub.role != 'x'`, `r.sub.n > 1 or
  r.sub.n < 5`, `r.sub.t in ['a'] and r.sub.t == 'b'` are refused). This is
  decided exactly over the comparisons with literals (every value of each
  attribute that can change an answer is tried) and with comparisons of two
  request values taken as free;
- no `#` (the matcher would cut the rest as a comment).

Attribute names may not start with `_`; no calls, subscripts, arithmetic,
`if`, lambdas, comprehensions, assignments or any other Python.
"""

from __future__ import annotations

import ast
import itertools
import math
import re
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

from policy_engine.engine.matcher import escape_assertion, rewrite_operators

__all__ = ["MAX_CHECKED_CASES", "condition_problem"]

_ESCAPED = re.compile(r"\b(r\d*)_(?=[A-Za-z])")

MAX_CHECKED_CASES = 50_000  # combinations of attribute values tried when looking for constants

_ORDER = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)
_EQUALITY = (ast.Eq, ast.NotEq)
_MEMBERSHIP = (ast.In, ast.NotIn)


class _Refused(Exception):
    pass


def condition_problem(text: str, request_tokens: Sequence[str]) -> str | None:
    """Why `text` is not a plain condition over `request_tokens` (`r_sub`, ...); None when it is."""
    if "#" in text:
        return "eval() text may not contain '#' (the rest of the matcher would become a comment)"
    python = rewrite_operators(escape_assertion(text)).strip()
    if python == "True":
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(python, mode="eval")
    except SyntaxError as exc:
        return f"eval() text is not a valid condition: {exc.msg}"
    try:
        checker = _Grammar(frozenset(request_tokens))
        checker.clause(tree.body)
        _Constants(checker.comparisons).check(tree.body)
    except _Refused as exc:
        return f"eval() text is not a plain condition: {exc}"
    except RecursionError:
        return "eval() text is nested too deeply"
    return None


class _Grammar:
    """Walks a clause, refusing anything outside the grammar; collects the comparisons."""

    def __init__(self, request_tokens: frozenset[str]) -> None:
        self.request_tokens = request_tokens
        self.comparisons: list[ast.Compare] = []

    def clause(self, node: ast.expr) -> None:
        if isinstance(node, ast.BoolOp):
            for value in node.values:
                self.clause(value)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            self.clause(node.operand)
        elif isinstance(node, ast.Compare):
            self.comparison(node)
        elif isinstance(node, ast.Constant):
            raise _Refused(f"the constant {node.value!r} is not a condition (True may only stand alone)")
        elif self.is_value(node):
            raise _Refused(f"{_show(node)} alone is not a comparison; compare it (== True)")
        else:
            raise _Refused(f"{_describe(node)} is not allowed")

    def comparison(self, node: ast.Compare) -> None:
        if len(node.ops) != 1:
            raise _Refused(f"chained comparison {_show(node)}; write one comparison per clause")
        op, left, right = node.ops[0], node.left, node.comparators[0]
        if isinstance(op, _MEMBERSHIP):
            self.operand(left)
            if not self.is_value(right):
                self.literal_list(right)
        elif isinstance(op, (*_EQUALITY, *_ORDER)):
            self.operand(left)
            self.operand(right)
        else:
            raise _Refused(f"the operator in {_show(node)} is not allowed")
        if not (self.is_value(left) or self.is_value(right)):
            raise _Refused(f"{_show(node)} reads no request value, so it is a constant")
        if ast.dump(left) == ast.dump(right):
            raise _Refused(f"{_show(node)} compares a value with itself, so it is a constant")
        self.comparisons.append(node)

    def operand(self, node: ast.expr) -> None:
        root = node
        while isinstance(root, ast.Attribute):
            root = root.value
        if isinstance(root, ast.Name) and _ESCAPED.match(root.id + "x") and root.id not in self.request_tokens:
            fields = ", ".join(_ESCAPED.sub(r"\1.", t) for t in sorted(self.request_tokens))
            raise _Refused(f"{_show(root)} is not a request field of this model ({fields})")
        if not (self.is_value(node) or _literal(node) is not _NO_LITERAL):
            raise _Refused(f"{_show(node)} is neither a request value (r.*) nor a literal")

    def literal_list(self, node: ast.expr) -> None:
        if not isinstance(node, (ast.List, ast.Tuple)) or not node.elts:
            raise _Refused(f"{_show(node)}: 'in' takes a non-empty list of literals or a request value")
        for element in node.elts:
            if _literal(element) is _NO_LITERAL:
                raise _Refused(f"{_show(element)} in a list is not a literal")

    def is_value(self, node: ast.expr) -> bool:
        while isinstance(node, ast.Attribute):
            if node.attr.startswith("_"):
                raise _Refused(f"attribute {node.attr!r} may not start with '_'")
            node = node.value
        return isinstance(node, ast.Name) and node.id in self.request_tokens


_NO_LITERAL = object()


def _literal(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, bool, int, float)):
        if isinstance(node.value, float) and not math.isfinite(node.value):
            return _NO_LITERAL
        return node.value
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant)
        and type(node.operand.value) in (int, float)
    ):
        return -node.operand.value
    return _NO_LITERAL


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    return "number" if isinstance(value, (int, float)) else "string"


class _Constants:
    """Finds clauses that no request can make both true and false."""

    def __init__(self, comparisons: list[ast.Compare]) -> None:
        self.literals: dict[str, list[Any]] = {}  # request value (dumped) -> literals it meets
        self.free: dict[str, int] = {}  # a comparison of two request values -> its variable
        for node in comparisons:
            op, left, right = node.ops[0], node.left, node.comparators[0]
            sides = [(left, right), (right, left)] if not isinstance(op, _MEMBERSHIP) else [(left, right)]
            values = [_literal(e) for e in right.elts] if isinstance(right, (ast.List, ast.Tuple)) else None
            if values is not None and _literal(left) is _NO_LITERAL:
                self.literals.setdefault(ast.dump(left), []).extend(values)
                continue
            paired = False
            for value_side, literal_side in sides:
                literal = _literal(literal_side)
                if literal is not _NO_LITERAL and _literal(value_side) is _NO_LITERAL:
                    self.literals.setdefault(ast.dump(value_side), []).append(literal)
                    paired = True
            if not paired:
                self.free.setdefault(_free_atom(node)[0], len(self.free))
        self.candidates: dict[str, list[Any]] = {}
        for name, literals in self.literals.items():
            kinds = {_kind(v) for v in literals}
            if len(kinds) > 1:
                raise _Refused(f"one request value is compared with literals of different types ({', '.join(sorted(kinds))})")
            self.candidates[name] = _candidates(kinds.pop(), literals)

    def check(self, root: ast.expr) -> None:
        names = list(self.candidates)
        count = 2 ** len(self.free)
        for name in names:
            count *= len(self.candidates[name])
        if count > MAX_CHECKED_CASES:
            raise _Refused("too many comparisons to check for constants; split the rule")
        seen: dict[int, set[bool]] = {}
        nodes = [n for n in ast.walk(root) if isinstance(n, (ast.BoolOp, ast.UnaryOp, ast.Compare))]
        for choice in itertools.product(*(self.candidates[n] for n in names)):
            values = dict(zip(names, choice, strict=True))
            for flags in itertools.product((False, True), repeat=len(self.free)):
                results: dict[int, bool] = {}
                self.evaluate(root, values, flags, results)
                for node in nodes:
                    if id(node) in results:
                        seen.setdefault(id(node), set()).add(results[id(node)])
        for node in nodes:
            outcomes = seen.get(id(node), set())
            if len(outcomes) == 1:
                word = "always true" if outcomes == {True} else "never true"
                raise _Refused(f"{_show(node)} is {word}")

    def evaluate(self, node: ast.expr, values: dict[str, Any], flags: tuple[bool, ...], results: dict[int, bool]) -> bool:
        if isinstance(node, ast.BoolOp):
            parts = [self.evaluate(v, values, flags, results) for v in node.values]
            result = all(parts) if isinstance(node.op, ast.And) else any(parts)
        elif isinstance(node, ast.UnaryOp):
            result = not self.evaluate(node.operand, values, flags, results)
        else:
            assert isinstance(node, ast.Compare)
            result = self.compare(node, values, flags)
        results[id(node)] = result
        return result

    def compare(self, node: ast.Compare, values: dict[str, Any], flags: tuple[bool, ...]) -> bool:
        key, negated = _free_atom(node)
        if key in self.free:
            return flags[self.free[key]] != negated
        left = self.value(node.left, values)
        right = node.comparators[0]
        right_value = (
            [_literal(e) for e in right.elts] if isinstance(right, (ast.List, ast.Tuple)) else self.value(right, values)
        )
        try:
            return bool(_OPERATORS[type(node.ops[0])](left, right_value))
        except TypeError:
            return False

    def value(self, node: ast.expr, values: dict[str, Any]) -> Any:
        literal = _literal(node)
        return literal if literal is not _NO_LITERAL else values[ast.dump(node)]


_OPERATORS = {
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}


def _free_atom(node: ast.Compare) -> tuple[str, bool]:
    """One variable for a comparison, its negation and its mirror image (`a < b`, `a >= b`,
    `b > a`), and whether `node` is the negated form."""
    op, left, right = type(node.ops[0]), ast.dump(node.left), ast.dump(node.comparators[0])
    negated = False
    if op is ast.Gt:
        op, left, right = ast.Lt, right, left
    elif op is ast.GtE:
        op, negated = ast.Lt, True
    elif op is ast.LtE:
        op, left, right, negated = ast.Lt, right, left, True
    elif op is ast.NotEq:
        op, negated = ast.Eq, True
    elif op is ast.NotIn:
        op, negated = ast.In, True
    if op is ast.Eq and right < left:
        left, right = right, left
    return f"{op.__name__}|{left}|{right}", negated


def _candidates(kind: str, literals: Iterable[Any]) -> list[Any]:
    """Values of one kind that give every answer a comparison with `literals` can give."""
    distinct = sorted(set(literals))
    if kind == "bool":
        return [False, True]
    if kind == "number":
        points = [distinct[0] - 1, distinct[-1] + 1, *distinct]
        points += [(a + b) / 2 for a, b in itertools.pairwise(distinct)]
        return points
    fresh = "\U0010ffff" * (max(len(s) for s in distinct) + 1)
    return ["", fresh, *distinct, *(s + "\x00" for s in distinct)]


def _show(node: ast.AST) -> str:
    """The node as the author wrote it (`r.sub.x`, not the engine's `r_sub.x`)."""
    return _ESCAPED.sub(r"\1.", ast.unparse(node))


def _describe(node: ast.AST) -> str:
    names = {
        ast.Call: "a call",
        ast.Subscript: "a subscript",
        ast.BinOp: "arithmetic",
        ast.IfExp: "an if-expression",
        ast.Lambda: "a lambda",
        ast.NamedExpr: "an assignment",
        ast.Attribute: "an attribute of something other than the request",
        ast.Name: "a name other than a request value",
    }
    return f"{names.get(type(node), type(node).__name__)} ({_show(node)})"
