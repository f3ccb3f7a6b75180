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


# ---- the parsed matcher: wherever a pattern function sits, however it is written -------------

SPELLINGS = [
    "regexMatch(r.dom, p.dom)",
    "regexMatch((r.dom), p.dom)",
    "regexMatch( r.dom ,p.dom )",
    "regexMatch(r.dom, (p.dom))",
    "regexMatch((r.dom), ((p.dom)))",
    "!(!regexMatch(r.dom, p.dom))",
    "(True and regexMatch(r.dom, p.dom))",
    "regexMatch(r.dom, p.dom) == True",
    "(regexMatch)(r.dom, p.dom)",
    "regexMatch(r.dom, '' + p.dom)",
]


@pytest.mark.parametrize("call", SPELLINGS)
def test_unanchored_regex_refused_however_the_call_is_written(call: str) -> None:
    """regexMatch is linted on the parsed matcher: parentheses, spacing, negation and nesting do not hide it."""
    model = MODEL.replace("regexMatch(r.dom, p.dom)", call)
    found = problems(GOOD + "p, reader, acme, tool/x, invoke, True\n", model)
    assert any(p.startswith("policy.csv:3: regexMatch pattern 'acme'") and "anchored" in p for p in found), found


@pytest.mark.parametrize(
    "call",
    ["keyMatch2(r.obj, p.obj)", "keyMatch2((r.obj), p.obj)", "!(!keyMatch2(r.obj,(p.obj)))", "keyMatch3(r.obj, p.obj)", "keyMatch5((r.obj), p.obj)"],
)
def test_dot_in_key_pattern_refused_however_the_call_is_written(call: str) -> None:
    """keyMatch2-5 patterns with a '.' are refused wherever and however the call is written."""
    model = MODEL.replace("keyMatch2(r.obj, p.obj)", call)
    found = problems(GOOD + "p, reader, ^acme$, tool/report.pdf, invoke, True\n", model)
    assert any(p.startswith("policy.csv:3:") and "'.'" in p for p in found), found


def test_escaped_dot_in_keymatch2_is_a_literal_dot() -> None:
    """'\\.' in a keyMatch2 pattern matches only a dot, so it is accepted."""
    assert problems(GOOD + "p, reader, ^acme$, tool/report\\.pdf, invoke, True\n") == []


def test_pattern_built_from_rule_fields_is_checked() -> None:
    """A pattern joined from rule fields and literals is checked as the joined text."""
    model = MODEL.replace("regexMatch(r.dom, p.dom)", "regexMatch(r.dom, '^' + p.dom)")
    found = problems(GOOD.replace("^acme$", "acme$") + "p, reader, acme, tool/x, invoke, True\n", model)
    assert found == ["policy.csv:3: regexMatch pattern '^acme': must be anchored at both ends (^...$)"]


@pytest.mark.parametrize("pattern_argument", ["r.dom", "r.dom + p.dom", "p.dom.lower()", "str(p.dom)"])
def test_pattern_from_the_request_is_refused(pattern_argument: str) -> None:
    """A pattern argument a request could choose (or that is computed) is refused at the matcher's line."""
    model = MODEL.replace("regexMatch(r.dom, p.dom)", f"regexMatch(p.dom, {pattern_argument})")
    found = problems(GOOD, model)
    assert any(p.startswith("model.conf:10: matcher m:") and "pattern of regexMatch()" in p for p in found), found


def test_literal_pattern_in_the_matcher_is_checked_at_its_line() -> None:
    """An unanchored literal pattern written in the matcher is refused at the matcher's line."""
    model = MODEL.replace("regexMatch(r.dom, p.dom)", "regexMatch(r.dom, 'acme')")
    assert problems(GOOD, model) == ["model.conf:10: matcher m: regexMatch pattern 'acme': must be anchored at both ends (^...$)"]


def test_ip_pattern_must_be_a_network() -> None:
    """An ipMatch pattern that is not an address or CIDR would fail every request: refused at its rule."""
    model = MODEL.replace("regexMatch(r.dom, p.dom)", "ipMatch(r.dom, p.dom)")
    found = problems("p, reader, 10.0.0.0/8, tool/x, invoke, True\np, reader, 10.0.0.0/33, tool/x, invoke, True\n", model)
    assert found == ["policy.csv:2: ipMatch pattern '10.0.0.0/33': not an IP address or CIDR network; ipMatch would fail on every request"]


# ---- regular expressions: RE2 runs them, and they cannot backtrack -----------------------------


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("^tool:(a|a)*$", "backtrack"),
        ("^tool:(a|aa)+$", "backtrack"),
        ("^tool:(a?a)+$", "backtrack"),
        ("^tool:(\\w+\\d+)+$", "nested quantifiers"),
        ("^tool:(a|)+$", "backtrack"),
        ("^tool:(.*a){3}$", "nested quantifiers"),
        ("^tool:.*.*.*$", "n^3"),
        ("^tool:(.*)(.*)(.*)$", "n^3"),
        ("^(?=tool)tool:x$", "RE2 cannot run it"),
        ("^(a)\\1$", "RE2 cannot run it"),
        ("^tool:x\\Z", "RE2 cannot run it"),
        ("^tool:a*+$", "RE2 cannot run it"),
        ("^tool:search|tool:read$", "anchored"),
        ("(?m)^tool:search$", "(?m)"),
        ("^tool:search", "anchored"),
        ("tool:search$", "anchored"),
        ("^tool:search\\$", "anchored"),
    ],
)
def test_dangerous_regex_is_refused_with_the_reason(pattern: str, reason: str) -> None:
    """Patterns RE2 cannot run, that backtrack, or that are not anchored are refused at their line."""
    [problem] = problems(GOOD + f"p, reader, {pattern}, tool/x, invoke, True\n")
    assert problem.startswith("policy.csv:3: regexMatch pattern")
    assert reason in problem


@pytest.mark.parametrize(
    "pattern",
    ["^tool:search$", "^tool:(search|read)$", "^tool:[a-z]+_[a-z]+_[a-z]+$", "^tool:.*$", "^(?:tool|data):[a-z_]+$", "^a$|^b$", "^(ab?)+$", "^tool:x{3}y+$", "^tool:(\\d|\\w)+$"],
)
def test_safe_regex_passes(pattern: str) -> None:
    """Anchored, linear patterns without ambiguous repetitions are accepted."""
    assert problems(GOOD + f"p, reader, {pattern}, tool/x, invoke, True\n") == []


# ---- eval(): a plain condition, and nothing that sneaks past it -------------------------------


@pytest.mark.parametrize(
    "condition",
    [
        "r.sub.role == 'x' or True",
        "r.sub.role == 'x' || True",
        "r.sub.role == 'x' or 1",
        "r.sub.role == 'x' or not False",
        "r.sub.role == 'x' or r.sub.role",
        "r.sub.role == 'x' or 'a' == 'a'",
        "r.sub.role == 'x' or r.sub.role == r.sub.role",
        "r.sub.role == 'x' or r.sub.role != 'x'",
        "r.sub.role == 'x' || !(r.sub.role == 'x')",
        "r.sub.level > 1 or r.sub.level < 5",
        "r.sub.level >= 3 or r.obj.level > r.sub.level or r.obj.level <= r.sub.level",
        "r.sub.x != 'a' or r.sub.x != 'b'",
        "r.sub.x in ['a'] and r.sub.x == 'b'",
        "r.sub.role == ('x' or True)",
        "r.sub.role in 'admin'",
        "r.sub.role not in []",
        "1 < 2 < r.sub.level",
        "r.sub.level == 1 or r.sub.level == 'one'",
        "r.sub.__class__ == 'x'",
        "r.sub.role[0] == 'a'",
        "r.sub.role == 'x' # or True",
        "(x := True)",
        "True and r.sub.role == 'x'",
        "False",
        "r.sub.role == None",
        "p.sub == p.sub",
        "r.ctx.channel == 'web'",
        "r.sub.role == 'x' or g(r.sub, 'admin', r.dom)",
        "r.sub.role.startswith('adm')",
        "[c for c in 'x']",
        "{'a': 1}['a'] == 1",
        "f'{r.sub}' == 'x'",
    ],
)
def test_eval_text_that_is_not_plain_is_refused(condition: str) -> None:
    """Constants, tautologies, calls, subscripts and everything outside the plain-condition grammar are refused."""
    found = problems(GOOD + f"p, reader, ^acme$, tool/x, invoke, {condition}\n")
    assert any(p.startswith("policy.csv:3: eval pattern") for p in found), found


@pytest.mark.parametrize(
    "condition",
    [
        "r.sub.role == 'x' or r.sub.role == 'y'",
        "r.sub.level > 1 and r.sub.level < 5",
        "r.sub.level >= 3 and r.sub.level <= 3",
        "-1 < r.sub.level",
        "r.sub.role not in ['a'] && r.obj.owner == r.sub.name",
        "!(r.sub.banned == True)",
        "r.sub.role in r.obj.roles",
    ],
)
def test_plain_conditions_with_real_choices_pass(condition: str) -> None:
    """Conditions that some request makes true and another false are accepted."""
    assert problems(GOOD + f"p, reader, ^acme$, tool/x, invoke, {condition}\n") == []
