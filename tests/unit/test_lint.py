"""The bundle lint refuses Casbin's sharp edges, naming the file and line."""

from __future__ import annotations

import pytest

from policy_engine.bundle import Bundle, compile_bundle
from policy_engine.bundle.lint import MAX_ROLE_DEPTH, lint_bundle

MODEL = """[request_definition]
r = sub, dom, obj, act
[policy_definition]
p = sub, dom, obj, act, cond
[role_definition]
g = _, _, _
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = g(r.sub, p.sub, r.dom) && regexMatch(r.dom, p.dom) && keyMatch2(r.obj, p.obj) && r.act == p.act && eval(p.cond)
"""
GOOD = "p, reader, ^acme$, tool/:name, invoke, r.sub.mfa == True\ng, alice, reader, acme\n"


def problems(rules: str, model: str = MODEL) -> list[str]:
    bundle = Bundle("demo", model, rules)
    return [str(p) for p in lint_bundle(bundle, compile_bundle(bundle))]


def test_clean_bundle_has_no_problems() -> None:
    """Anchored regexes, dot-free keyMatch2 patterns and plain conditions pass."""
    assert problems(GOOD) == []


def test_bundle_without_rules_is_refused() -> None:
    """A bundle with no policy rules is refused."""
    assert problems("g, alice, reader, acme\n") == ["policy.csv: the bundle has no policy rules"]


@pytest.mark.parametrize(
    ("domain", "message"),
    [
        ("acme", "anchored"),
        ("^acme", "anchored"),
        ("acme$", "anchored"),
        ("^(a+)+$", "nested quantifiers"),
        ("^(a*b?)*$", "nested quantifiers"),
        ("^([a-z]+){2}$", "nested quantifiers"),
        ("^*a$", "invalid regular expression"),
    ],
)
def test_bad_regex_is_refused_at_its_line(domain: str, message: str) -> None:
    """regexMatch patterns must be anchored both ends and free of nested quantifiers."""
    rules = GOOD + f"p, reader, {domain}, tool/x, invoke, True\n"
    [problem] = problems(rules)
    assert problem.startswith("policy.csv:3: regexMatch pattern")
    assert message in problem


def test_bounded_repetition_inside_group_is_fine() -> None:
    """A group repeated with an inner single-character optional is not catastrophic."""
    assert problems(GOOD + "p, reader, ^(ab?)+$, tool/x, invoke, True\n") == []


def test_dot_in_keymatch2_pattern_is_refused() -> None:
    """A literal '.' in a keyMatch2 pattern is refused: keyMatch2 treats it as any character."""
    [problem] = problems(GOOD + "p, reader, ^acme$, tool/web.search, invoke, True\n")
    assert problem.startswith("policy.csv:3:")
    assert "'.'" in problem


@pytest.mark.parametrize(
    "condition",
    [
        "__import__('os').system('id')",
        "len(r.sub.groups) > 0",
        "r.sub.age + 1 > 18",
        "p.sub == 'x'",
        "r.sub.mfa == True if True else False",
        "lambda: True",
    ],
)
def test_eval_text_must_be_a_plain_condition(condition: str) -> None:
    """eval() text may only compare request attributes and literals."""
    [problem] = problems(GOOD + f"p, reader, ^acme$, tool/x, invoke, {condition}\n")
    assert problem.startswith("policy.csv:3: eval pattern")


@pytest.mark.parametrize(
    "condition",
    [
        "r.sub.clearance >= r.obj.classification",
        "r.sub.mfa == True && !(r.obj.risk == 'high')",
        "r.sub.role in ['a'] || r.obj.channel != 'sms'",
        "True",
    ],
)
def test_plain_conditions_pass(condition: str) -> None:
    """Comparisons joined by &&, ||, ! and in-lists of literals are accepted."""
    assert problems(GOOD + f"p, reader, ^acme$, tool/x, invoke, {condition}\n") == []


def test_role_cycle_is_refused() -> None:
    """A cycle in the role graph is refused naming the roles and the line."""
    rules = GOOD + "g, reader, writer, acme\ng, writer, reader, acme\n"
    found = problems(rules)
    assert len(found) == 1
    assert "role cycle" in found[0]
    assert "reader" in found[0] and "writer" in found[0]


def test_role_chain_deeper_than_limit_is_refused() -> None:
    """A chain of roles longer than the engine follows is refused."""
    chain = "".join(f"g, r{i}, r{i + 1}, acme\n" for i in range(MAX_ROLE_DEPTH + 1))
    found = problems(GOOD + chain)
    assert any("levels deep" in p for p in found)


def test_chain_at_the_limit_is_fine() -> None:
    """A chain exactly as deep as the limit is accepted."""
    chain = "".join(f"g, r{i}, r{i + 1}, acme\n" for i in range(MAX_ROLE_DEPTH))
    assert problems(GOOD + chain) == []


def test_control_character_and_comma_fields_are_refused() -> None:
    """Fields that would not survive a CSV round trip are refused."""
    found = problems(GOOD + "p, reader, ^acme$, tool/x, invoke, r.sub.x in ('a', 'b')\n")
    assert any("comma" in p for p in found)
    found = problems(GOOD + "p, read\ter, ^acme$, tool/x, invoke, True\n")
    assert any("control character" in p for p in found)
