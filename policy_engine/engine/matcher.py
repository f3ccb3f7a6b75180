"""The Casbin matcher dialect: pycasbin's string rewrites, parsing, and two exact evaluators.

pycasbin defines the dialect by text rewrites and a simpleeval interpreter;
all of that lives here, in the order pycasbin applies it:

1. at model load, `escape_assertion` turns `p.sub` into `p_sub` and `r.obj`
   into `r_obj` (only the first `pN.`/`rN.` family it finds), and
   `remove_comments` cuts the text at the first `#`;
2. per rule, when the matcher has `eval(p_x)`, each call is replaced by
   `(` + the escaped rule value + `)` (`substitute_evals`);
3. `rewrite_operators` replaces `&&`, `||` and `!` (not before `=`) as plain
   text, even inside string literals;
4. the text is stripped and parsed with `ast.parse`; the first statement's
   `.value` is the expression (`parse_expression`).

Two evaluators give simpleeval's exact results:

* `compile_expression` turns the expression into a Python function
  `(rv, pv, tail) -> value` (rv: request values, pv: rule values). It covers
  the constructs whose Python meaning equals simpleeval's for values of
  builtin types (str, numbers, bool, None, containers of those, `Entity`);
  otherwise it returns None.
* `Interpreter` is simpleeval itself (`EvalWithCompoundTypes`, as pycasbin
  uses it), for every other construct or value.
"""

from __future__ import annotations

import ast
import re
import threading
import types
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import simpleeval

__all__ = [
    "TAIL",
    "CompiledExpression",
    "Interpreter",
    "ParsedExpression",
    "compile_expression",
    "escape_assertion",
    "eval_arguments",
    "has_eval",
    "parse_expression",
    "remove_comments",
    "rewrite_operators",
    "substitute_evals",
]

_EVAL = re.compile(r"\beval\((?P<rule>[^)]*)\)")
_P_FAMILY = re.compile(r"\bp(\d*)\.")
_R_FAMILY = re.compile(r"\br(\d*)\.")
_NOT = re.compile(r"!(?!=)")


def escape_assertion(text: str) -> str:
    """`p.sub` -> `p_sub`, `r2.obj` -> `r2_obj`: only the first `p`/`r` family found is escaped."""
    found = _P_FAMILY.search(text)
    if found is not None:
        suffix = found.group(1)
        text = re.sub(rf"\bp{suffix}\.", f"p{suffix}_", text)
    found = _R_FAMILY.search(text)
    if found is not None:
        suffix = found.group(1)
        text = re.sub(rf"\br{suffix}\.", f"r{suffix}_", text)
    return text


def remove_comments(text: str) -> str:
    """Cut at the first `#` (and strip), even inside a string literal."""
    cut = text.find("#")
    return text if cut == -1 else text[:cut].strip()


def rewrite_operators(text: str) -> str:
    """`&&` -> `and`, `||` -> `or`, `!` (not before `=`) -> `not `, as plain text."""
    return _NOT.sub("not ", text.replace("&&", "and").replace("||", "or"))


def has_eval(text: str) -> bool:
    """Whether the matcher calls `eval(...)` (so each rule has its own expression)."""
    return _EVAL.search(text) is not None


def eval_arguments(text: str) -> list[str]:
    """The raw argument texts of the `eval(...)` calls, in order."""
    return _EVAL.findall(text)


def substitute_evals(text: str, rule_texts: Sequence[str]) -> str:
    """Replace the `eval(...)` calls, left to right, with `(` + rule text + `)`."""
    pending = list(rule_texts)
    position = 0
    found = _EVAL.search(text, position)
    while found:
        inserted = "(" + pending.pop(0) + ")"
        text = text[: found.start()] + inserted + text[found.end() :]
        position = found.start() + len(inserted)
        found = _EVAL.search(text, position)
    return text


@dataclass(frozen=True)
class ParsedExpression:
    """A matcher text after the rewrites: its AST, or the error pycasbin would raise."""

    text: str
    node: ast.expr | None
    error: Exception | None = None

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error


def parse_expression(text: str) -> ParsedExpression:
    """Parse rewritten matcher text the way pycasbin's SimpleEval does (errors are kept, not raised)."""
    if text == "":
        return ParsedExpression(text, None, simpleeval.FeatureNotAvailable("empty matcher"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            body = ast.parse(text.strip()).body
        node = body[0].value  # type: ignore[attr-defined]
    except Exception as exc:  # noqa: BLE001 - pycasbin raises this on the request
        return ParsedExpression(text, None, exc)
    if node is None:
        return ParsedExpression(text, None, simpleeval.FeatureNotAvailable("no expression"))
    return ParsedExpression(text, node)


# --------------------------------------------------------------------------------------------
# Evaluator 1: simpleeval itself.


class Interpreter(simpleeval.EvalWithCompoundTypes):
    """pycasbin's evaluator: simpleeval with compound types and the matcher functions.

    Like pycasbin's, one instance serves every rule of one request (its
    comprehension budget counts across them); `begin()` starts a request.
    """

    def __init__(self, functions: Mapping[str, Callable[..., Any]]) -> None:
        super().__init__(functions=dict(functions))

    def begin(self) -> Interpreter:
        self._max_count = 0
        return self

    def run(self, node: ast.expr | None, names: dict[str, Any]) -> Any:
        if names:
            self.names = names
        return self._eval(node)


class InterpreterPool(threading.local):
    """One `Interpreter` per thread for a function table (simpleeval instances are not shareable)."""

    def __init__(self, functions: Mapping[str, Callable[..., Any]]) -> None:
        self.functions = functions
        self.interpreter: Interpreter | None = None

    def get(self) -> Interpreter:
        if self.interpreter is None:
            self.interpreter = Interpreter(self.functions)
        return self.interpreter.begin()


# --------------------------------------------------------------------------------------------
# Evaluator 2: compiled Python.

TAIL = ast.Name(id="tail", ctx=ast.Load())
"""A marker node: compiles to the function's `tail` argument (the value of dropped conjuncts)."""

CompiledExpression = Callable[[Sequence[Any], Sequence[Any], Any], Any]

_MAX_DEPTH = 60


class _Unsupported(Exception):
    """The construct is left to the interpreter."""


def _undefined_name(name: str) -> Any:
    raise simpleeval.NameNotDefined(name, "")


def _undefined_function(name: str) -> Any:
    raise simpleeval.FunctionNotDefined(name, "")


def _forbidden(message: str) -> Any:
    raise simpleeval.FeatureNotAvailable(message)


def _attr(value: Any, name: str) -> Any:
    """simpleeval's attribute access: getattr, else value[name], with its checks."""
    try:
        item = getattr(value, name)
    except (AttributeError, TypeError):
        try:
            item = value[name]
        except (KeyError, TypeError):
            raise simpleeval.AttributeDoesNotExist(name, "") from None
    if isinstance(item, types.ModuleType):
        raise simpleeval.FeatureNotAvailable("Sorry, modules are not allowed in attribute access")
    if callable(item) and item in simpleeval.DISALLOW_FUNCTIONS:
        raise simpleeval.FeatureNotAvailable("This function is forbidden")
    return item


_BINARY = {
    ast.Sub: "({0} - {1})",
    ast.Div: "({0} / {1})",
    ast.FloorDiv: "({0} // {1})",
    ast.Mod: "({0} % {1})",
    ast.BitOr: "({0} | {1})",
    ast.BitXor: "({0} ^ {1})",
    ast.BitAnd: "({0} & {1})",
    ast.Add: "_add({0}, {1})",
    ast.Mult: "_mult({0}, {1})",
    ast.Pow: "_pow({0}, {1})",
    ast.LShift: "_lshift({0}, {1})",
    ast.RShift: "_rshift({0}, {1})",
}
_UNARY = {ast.Not: "(not {0})", ast.USub: "(-{0})", ast.UAdd: "(+{0})", ast.Invert: "(~{0})"}
_COMPARE = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Is: "is",
    ast.IsNot: "is not",
}
_PRIMITIVE_CONSTANTS = (str, bytes, int, float, complex, bool, type(None))


class _Codegen:
    def __init__(
        self,
        request_names: Mapping[str, int],
        rule_names: Mapping[str, int],
        functions: Mapping[str, Callable[..., Any]],
    ) -> None:
        self.request_names = request_names
        self.rule_names = rule_names
        self.functions = functions
        self.namespace: dict[str, Any] = {
            "_attr": _attr,
            "_undefined_name": _undefined_name,
            "_undefined_function": _undefined_function,
            "_forbidden": _forbidden,
            "_add": simpleeval.safe_add,
            "_mult": simpleeval.safe_mult,
            "_pow": simpleeval.safe_power,
            "_lshift": simpleeval.safe_lshift,
            "_rshift": simpleeval.safe_rshift,
            "_slice": slice,
        }
        self._bound: dict[int, str] = {}

    def bind(self, value: Any) -> str:
        key = id(value)
        name = self._bound.get(key)
        if name is None:
            name = f"_k{len(self._bound)}"
            self._bound[key] = name
            self.namespace[name] = value
        return name

    def expr(self, node: ast.AST, depth: int = 0) -> str:  # noqa: C901, PLR0911, PLR0912
        if depth > _MAX_DEPTH:
            raise _Unsupported("too deep")
        sub = depth + 1
        if node is TAIL:
            return "tail"
        if isinstance(node, ast.Constant):
            value = node.value
            if not isinstance(value, _PRIMITIVE_CONSTANTS):
                raise _Unsupported("constant")
            if hasattr(value, "__len__") and len(value) > simpleeval.MAX_STRING_LENGTH:
                raise _Unsupported("long literal")
            return self.bind(value)
        if isinstance(node, ast.Name):
            if node.id in self.rule_names:
                return f"pv[{self.rule_names[node.id]}]"
            if node.id in self.request_names:
                return f"rv[{self.request_names[node.id]}]"
            if node.id in self.functions:
                return self.bind(self.functions[node.id])
            return f"_undefined_name({node.id!r})"
        if isinstance(node, ast.BoolOp):
            joiner = " and " if isinstance(node.op, ast.And) else " or "
            return "(" + joiner.join(self.expr(v, sub) for v in node.values) + ")"
        if isinstance(node, ast.UnaryOp):
            template = _UNARY.get(type(node.op))
            if template is None:
                raise _Unsupported("unary")
            return template.format(self.expr(node.operand, sub))
        if isinstance(node, ast.BinOp):
            template = _BINARY.get(type(node.op))
            if template is None:
                raise _Unsupported("binary")
            return template.format(self.expr(node.left, sub), self.expr(node.right, sub))
        if isinstance(node, ast.Compare):
            parts = [self.expr(node.left, sub)]
            for op, comparator in zip(node.ops, node.comparators, strict=True):
                symbol = _COMPARE.get(type(op))
                if symbol is None:
                    raise _Unsupported("compare")
                parts.extend((symbol, self.expr(comparator, sub)))
            return "(" + " ".join(parts) + ")"
        if isinstance(node, ast.IfExp):
            return (
                f"({self.expr(node.body, sub)} if {self.expr(node.test, sub)} "
                f"else {self.expr(node.orelse, sub)})"
            )
        if isinstance(node, ast.Attribute):
            attr = node.attr
            if attr.startswith(tuple(simpleeval.DISALLOW_PREFIXES)) or (
                attr in simpleeval.DISALLOW_METHODS
            ):
                return f"_forbidden({('attribute not available: ' + attr)!r})"
            return f"_attr({self.expr(node.value, sub)}, {attr!r})"
        if isinstance(node, ast.Call):
            return self.call(node, sub)
        if isinstance(node, ast.Subscript):
            return f"({self.expr(node.value, sub)})[{self.expr(node.slice, sub)}]"
        if isinstance(node, ast.Slice):
            parts = [
                "None" if part is None else self.expr(part, sub)
                for part in (node.lower, node.upper, node.step)
            ]
            return f"_slice({', '.join(parts)})"
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            if any(isinstance(e, ast.Starred) for e in node.elts):
                raise _Unsupported("starred")
            items = [self.expr(e, sub) for e in node.elts]
            if isinstance(node, ast.Tuple):
                return "(" + "".join(item + ", " for item in items) + ")"
            if isinstance(node, ast.List):
                return "[" + ", ".join(items) + "]"
            return "{" + ", ".join(items) + "}"
        if isinstance(node, ast.Dict):
            if any(k is None for k in node.keys):
                raise _Unsupported("dict unpacking")
            pairs = [
                f"{self.expr(k, sub)}: {self.expr(v, sub)}"
                for k, v in zip(node.keys, node.values, strict=True)
            ]
            return "{" + ", ".join(pairs) + "}"
        raise _Unsupported(type(node).__name__)

    def call(self, node: ast.Call, sub: int) -> str:
        if any(isinstance(a, ast.Starred) for a in node.args) or any(
            k.arg is None for k in node.keywords
        ):
            raise _Unsupported("star arguments")
        if isinstance(node.func, ast.Name):
            name = node.func.id
            if name not in self.functions:
                return f"_undefined_function({name!r})"
            if self.functions[name] in simpleeval.DISALLOW_FUNCTIONS:
                raise _Unsupported("forbidden function")
            target = self.bind(self.functions[name])
        elif isinstance(node.func, ast.Attribute):
            target = self.expr(node.func, sub)
        else:
            raise _Unsupported("call target")
        args = [self.expr(a, sub) for a in node.args]
        args += [f"{k.arg}={self.expr(k.value, sub)}" for k in node.keywords]
        return f"{target}({', '.join(args)})"


def compile_expression(
    node: ast.AST,
    request_names: Mapping[str, int],
    rule_names: Mapping[str, int],
    functions: Mapping[str, Callable[..., Any]],
) -> CompiledExpression | None:
    """Compile to `(rv, pv, tail) -> value`, or None when the interpreter must evaluate it."""
    codegen = _Codegen(request_names, rule_names, functions)
    try:
        body = codegen.expr(node)
        source = f"def _matcher(rv, pv, tail):\n    return {body}\n"
        code = compile(source, "<matcher>", "exec")
    except (_Unsupported, RecursionError, SyntaxError, ValueError, MemoryError):
        return None
    exec(code, codegen.namespace)  # noqa: S102 - source generated from a checked AST
    fn: CompiledExpression = codegen.namespace["_matcher"]
    return fn
