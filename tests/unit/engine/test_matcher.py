"""The matcher dialect: pycasbin's rewrites, and the compiled evaluator against simpleeval."""

from __future__ import annotations

from typing import Any

import pytest
from casbin.core_enforcer import CoreEnforcer
from casbin.util import util as casbin_util
from hypothesis import given, settings
from hypothesis import strategies as st

from policy_engine.engine import Entity
from policy_engine.engine.functions import BUILTIN_FUNCTIONS
from policy_engine.engine.matcher import (
    Interpreter,
    compile_expression,
    escape_assertion,
    parse_expression,
    remove_comments,
    rewrite_operators,
    substitute_evals,
)


class TestRewrites:
    def test_escapes_only_the_first_policy_family(self) -> None:
        """`p.` is escaped but `p2.` is left alone when `p.` comes first, as pycasbin does."""
        assert escape_assertion("r.sub == p.sub && r.obj == p2.obj") == (
            "r_sub == p_sub && r_obj == p2.obj"
        )

    def test_escape_agrees_with_pycasbin(self) -> None:
        """escape_assertion gives pycasbin's text on a set of tricky inputs."""
        for text in ["r2.sub == p2.sub", "ip.x == r.a.b", "'p.x' == r.sub", "rp.x", "p.p.x"]:
            assert escape_assertion(text) == casbin_util.escape_assertion(text)

    def test_operators_are_rewritten_even_inside_strings(self) -> None:
        """`&&`, `||` and `!` are replaced as plain text, `!=` is kept."""
        assert rewrite_operators("a && !b || c != 'x!'") == "a and not b or c != 'xnot '"

    def test_rewrite_agrees_with_pycasbin(self) -> None:
        """The rewritten text is exactly what pycasbin hands to simpleeval."""
        text = "!(r_a == '&&') && r_b != p_c || !r_d"
        assert rewrite_operators(text) == CoreEnforcer._get_expression(text).expr

    def test_comments_cut_the_matcher(self) -> None:
        """A `#` ends the matcher text, even inside a literal."""
        assert remove_comments("r_a == '#' && x") == "r_a == '"

    def test_eval_substitution_wraps_rule_text(self) -> None:
        """Each eval(...) becomes the rule text in parentheses, left to right."""
        text = "eval(p_a) && eval(p_b)"
        assert substitute_evals(text, ["x > 1", "y"]) == casbin_util.replace_eval(text, ["x > 1", "y"])

    def test_parse_error_is_kept_not_raised(self) -> None:
        """A matcher that does not parse is remembered, to be raised on each request."""
        parsed = parse_expression("a and and b")
        assert parsed.node is None
        assert isinstance(parsed.error, SyntaxError)

    def test_assignment_takes_its_value(self) -> None:
        """Like pycasbin, `x = expr` evaluates `expr` (the statement's value)."""
        parsed = parse_expression("x = 1 == 1")
        assert isinstance(parsed.node, __import__("ast").Compare)


REQUEST = {"r_sub": 0, "r_obj": 1}
RULE = {"p_sub": 0, "p_obj": 1}
FUNCTIONS: dict[str, Any] = {**BUILTIN_FUNCTIONS, "list": list, "tuple": tuple, "dict": dict, "set": set}

EXPRESSIONS = [
    "r_sub == p_sub and r_obj == p_obj",
    "r_sub.level > 2 or p_sub == 'x'",
    "r_sub.level * 2 + 1 >= 5",
    "r_sub.missing",
    "r_sub.tags[0] == 'a'",
    "r_sub.tags[1:] == []",
    "r_obj in ('a', 'b') and not r_sub == p_sub",
    "r_sub.startswith(p_sub)",
    "r_sub.__class__",
    "r_sub.format()",
    "keyMatch(r_obj, p_obj)",
    "keyMatch2(r_obj, p_obj)",
    "regexMatch(r_obj, p_obj)",
    "unknownFn(r_obj)",
    "undefined_name == 1",
    "keyMatch",
    "{'a': r_sub.level}['a'] if r_sub.level else -1",
    "1 < r_sub.level < 3",
    "r_sub.level ** 2 - r_sub.level // 2 % 3",
    "r_sub.level / 0",
    "r_obj + p_obj",
    "r_obj * 3",
    "list(r_obj)",
    "set([r_obj, p_obj])",
    "r_sub.level is None",
    "r_sub.level is not None and ~r_sub.level < 0",
    "-r_sub.level + +1",
    "r_sub.level & 1 | 2 ^ 3",
    "r_sub.level << 2 >> 1",
    "r_sub.get('x')",
    "dict(a=1)",
]
VALUES = [
    Entity("alice", {"level": 2, "tags": ["a", "b"]}),
    Entity("bob", {"level": None}),
    Entity("eve", {}),
    {"level": 3, "tags": ["x"], "x": 5},
    "plain",
    "a",
    5,
]


def _run(fn: Any) -> tuple[Any, ...]:
    try:
        return ("ok", fn())
    except Exception:  # noqa: BLE001 - the outcome, not the message, must agree
        return ("error",)


@pytest.mark.parametrize("text", EXPRESSIONS)
def test_compiled_expression_agrees_with_simpleeval(text: str) -> None:
    """For builtin-typed values, the compiled expression returns or raises exactly as simpleeval."""
    node = parse_expression(text).node
    assert node is not None
    compiled = compile_expression(node, REQUEST, RULE, FUNCTIONS)
    assert compiled is not None, text
    for sub in VALUES:
        for obj in ["a", "/x/1", "b"]:
            for rule in [("alice", "a"), ("x", "/x/*"), ("y", "[")]:
                names = {"r_sub": sub, "r_obj": obj, "p_sub": rule[0], "p_obj": rule[1]}
                expected = _run(lambda: Interpreter(FUNCTIONS).begin().run(node, dict(names)))
                actual = _run(lambda: compiled((sub, obj), rule, None))
                assert actual == expected, (text, sub, obj, rule)


def test_unsupported_constructs_are_left_to_the_interpreter() -> None:
    """Comprehensions, f-strings, lambdas and starred arguments do not compile."""
    for text in ["[x for x in r_obj]", "f'{r_obj}'", "(lambda: 1)()", "keyMatch(*r_obj)"]:
        node = parse_expression(text).node
        assert node is not None
        assert compile_expression(node, REQUEST, RULE, FUNCTIONS) is None, text


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    st.recursive(
        st.sampled_from(["r_sub.level", "1", "2.5", "'a'", "p_sub", "r_obj", "True", "None"]),
        lambda inner: st.tuples(
            inner, st.sampled_from([" + ", " - ", " * ", " == ", " < ", " and ", " or ", " in "]), inner
        ).map(lambda t: "(" + "".join(t) + ")"),
        max_leaves=6,
    )
)
def test_generated_expressions_agree_with_simpleeval(text: str) -> None:
    """Random arithmetic/boolean expressions give simpleeval's value or error when compiled."""
    node = parse_expression(text).node
    assert node is not None
    compiled = compile_expression(node, REQUEST, RULE, FUNCTIONS)
    assert compiled is not None
    for sub in VALUES[:4]:
        names = {"r_sub": sub, "r_obj": "ab", "p_sub": "a", "p_obj": "b"}
        expected = _run(lambda: Interpreter(FUNCTIONS).begin().run(node, dict(names)))
        assert _run(lambda: compiled((sub, "ab"), ("a", "b"), None)) == expected, (text, sub)
