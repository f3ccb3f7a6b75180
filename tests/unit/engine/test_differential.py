"""Property-based differential tests: generated models, rules and requests decide as pycasbin."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policy_engine.engine import Engine, Entity
from policy_engine.errors import EngineError

from .oracle import assert_same, oracle

SUBJECTS = ["alice", "bob", "admin", "staff", "root"]
DOMAINS = ["d1", "d2", "*"]
OBJECT_PATTERNS = [
    "/a", "/a/*", "/a/b", "/b/*", "*", "/a/:id", "/a/{id}", "/a/{id}/{id}",
    "/a.*", "^/b$", "/a|/b", "/b?", "/[ab]", "/a/**", "/a/*+", "+x", "/c",
]  # fmt: skip
ACTIONS = ["read", "write"]
EFFECTS_ALLOWED = ["allow", "allow", "deny", "other"]
PRIORITIES = ["1", "2", "10", "3"]
CONDITIONS = ["True", "r.sub.level > 2", "r.sub.level", "False", "r.act == 'read'", "1.5", "0.0"]
EFFECT_TEXTS = [
    "some(where (p.eft == allow))",
    "!some(where (p.eft == deny))",
    "some(where (p.eft == allow)) && !some(where (p.eft == deny))",
    "priority(p.eft) || deny",
    "subjectPriority(p.eft) || deny",
]
OBJECT_FUNCTIONS = [
    "keyMatch", "keyMatch2", "keyMatch3", "keyMatch4", "keyMatch5", "regexMatch", "globMatch",
]  # fmt: skip

REQUEST_SUBJECTS = ["alice", "bob", "admin", "staff", "eve", "root"]
REQUEST_DOMAINS = ["d1", "d2", "d3"]
REQUEST_OBJECTS = ["/a", "/a/b", "/a/b/c", "/b", "/b1", "/c", "/a/1/1", "/a/1/2", "/a/1?x", "/ab"]
REQUEST_ACTIONS = ["read", "write", "exec"]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[str, str, list[tuple[Any, ...]]]:  # noqa: C901, PLR0912, PLR0915
    """A random model (token sets, roles, effect, matcher), rules for it, and requests."""
    with_dom = draw(st.booleans())
    with_act = draw(st.booleans())
    effect = draw(st.sampled_from(EFFECT_TEXTS))
    with_eft = effect != EFFECT_TEXTS[0] or draw(st.booleans())
    with_priority = "priority(" in effect and draw(st.booleans())
    with_cond = draw(st.booleans())
    role_kind = draw(st.sampled_from(["none", "plain", "domain", "conditional"]))
    if "subjectPriority" in effect and role_kind == "none":
        role_kind = "plain"
    with_g2 = draw(st.booleans()) and role_kind in ("plain", "domain")

    request_tokens = ["sub"] + (["dom"] if with_dom else []) + ["obj"] + (["act"] if with_act else [])
    policy_tokens = ["sub"] + (["dom"] if with_dom else []) + ["obj"]
    policy_tokens += (["act"] if with_act else []) + (["cond"] if with_cond else [])
    policy_tokens += (["eft"] if with_eft else []) + (["priority"] if with_priority else [])
    policy_tokens = draw(st.permutations(policy_tokens))

    terms: list[str] = []
    domain_arg = ", r.dom" if with_dom and role_kind == "domain" else ""
    sub_choices = ["r.sub == p.sub", "p.sub == r.sub"]
    if role_kind != "none":
        sub_choices += [f"g(r.sub, p.sub{domain_arg})"] * 3
        sub_choices += [f'(g(r.sub, p.sub{domain_arg}) || r.sub == "root")']
    terms.append(draw(st.sampled_from(sub_choices)))
    if with_dom:
        terms.append(draw(st.sampled_from(["r.dom == p.dom", "keyMatch(r.dom, p.dom)"])))
    obj_choices = [f"{fn}(r.obj, p.obj)" for fn in OBJECT_FUNCTIONS] + ["r.obj == p.obj"]
    obj_choices += ["r.obj.startswith(p.obj)", "!(r.obj == p.obj) && keyMatch(r.obj, p.obj)"]
    if with_g2:
        obj_choices.append("g2(r.obj, p.obj)")
    terms.append(draw(st.sampled_from(obj_choices)))
    if with_act:
        terms.append(
            draw(
                st.sampled_from(
                    ["r.act == p.act", "r.act == p.act", "r.act in ('read', 'write')",
                     "p.act == 'read'", "r.act != p.act", "(r.act == p.act || p.act == 'write')"]
                )  # fmt: skip
            )
        )
    if draw(st.booleans()):
        terms.append(draw(st.sampled_from(["r.sub.level >= 1", "r.obj != '/c'", "True"])))
    if with_cond:
        terms.append("eval(p.cond)")
    terms = draw(st.permutations(terms))
    joiners = [draw(st.sampled_from([" && "] * 6 + [" || "])) for _ in terms[1:]]
    matcher = terms[0] + "".join(j + t for j, t in zip(joiners, terms[1:], strict=True))

    lines = ["[request_definition]", "r = " + ", ".join(request_tokens)]
    lines += ["[policy_definition]", "p = " + ", ".join(policy_tokens)]
    if role_kind != "none":
        g_def = {"plain": "_, _", "domain": "_, _, _", "conditional": "_, _, (_, _)"}[role_kind]
        lines += ["[role_definition]", f"g = {g_def}"] + (["g2 = _, _"] if with_g2 else [])
    lines += ["[policy_effect]", f"e = {effect}", "[matchers]", f"m = {matcher}"]
    model = "\n".join(lines) + "\n"

    field_values = {
        "sub": SUBJECTS,
        "dom": DOMAINS,
        "obj": OBJECT_PATTERNS,
        "act": ACTIONS,
        "cond": CONDITIONS,
        "eft": EFFECTS_ALLOWED,
        "priority": PRIORITIES,
    }
    policy: list[str] = []
    for _ in range(draw(st.integers(0, 14))):
        values = [draw(st.sampled_from(field_values[t])) for t in policy_tokens]
        misfit = draw(st.sampled_from([0] * 12 + [-1, 1]))  # now and then a short or long rule
        values = values[:misfit] if misfit < 0 else values + ["extra"] * misfit
        policy.append("p, " + ", ".join(values))
    if role_kind != "none":
        names = SUBJECTS + ["eve", "group"]
        for _ in range(draw(st.integers(0, 8))):
            user, role = draw(st.sampled_from(names)), draw(st.sampled_from(names))
            extra = {
                "plain": "",
                "domain": ", " + draw(st.sampled_from(["d1", "d2"])),
                "conditional": ", _, _",
            }[role_kind]
            policy.append(f"g, {user}, {role}{extra}")
    if with_g2:
        for _ in range(draw(st.integers(0, 3))):
            child = draw(st.sampled_from(REQUEST_OBJECTS))
            parent = draw(st.sampled_from(OBJECT_PATTERNS))
            policy.append(f"g2, {child}, {parent}")
    policy_text = "\n".join(draw(st.permutations(policy)))

    def subject() -> Any:
        name = draw(st.sampled_from(REQUEST_SUBJECTS))
        shape = draw(st.sampled_from(["str", "entity", "entity", "bare"]))
        if shape == "str":
            return name
        if shape == "bare":
            return Entity(name, {})
        return Entity(name, {"level": draw(st.integers(0, 4))})

    requests: list[tuple[Any, ...]] = []
    for _ in range(draw(st.integers(1, 12))):
        values: list[Any] = [subject()]
        if with_dom:
            values.append(draw(st.sampled_from(REQUEST_DOMAINS)))
        values.append(draw(st.sampled_from(REQUEST_OBJECTS)))
        if with_act:
            values.append(draw(st.sampled_from(REQUEST_ACTIONS)))
        requests.append(tuple(values))
    return model, policy_text, requests


@settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenarios())
def test_generated_models_decide_as_pycasbin(scenario: tuple[str, str, list[tuple[Any, ...]]]) -> None:
    """For generated models, rules and requests, every outcome (decision, rule, error) is pycasbin's."""
    model, policy, requests = scenario
    try:
        enforcer = oracle(model, policy)
    except Exception:  # noqa: BLE001 - pycasbin refuses: so must the engine
        try:
            Engine.from_text(model, policy)
        except EngineError:
            return
        raise AssertionError("pycasbin refused these texts but the engine loaded them") from None
    engine = Engine.from_text(model, policy)
    for values in requests:
        assert_same(engine, enforcer, values)


@settings(max_examples=600, deadline=None, derandomize=True)
@given(
    st.text(alphabet="ab/*?[]!^-\\c{},.é", max_size=9),
    st.text(alphabet="ab/c-.é{},*", max_size=9),
)
def test_glob_match_agrees_with_pycasbin(pattern: str, key: str) -> None:
    """globMatch answers (or raises) exactly like pycasbin 2.x (wcmatch, `**`, braces); the
    index's literal prefix is a prefix of every key it accepts."""
    from casbin.util import glob_match as theirs

    from policy_engine.engine.functions import collapse_slashes, glob_literal_prefix
    from policy_engine.engine.functions import glob_match as ours

    if run_glob(ours, key, pattern) == ("ok", True):
        assert collapse_slashes(key).startswith(glob_literal_prefix(pattern))
    assert run_glob(ours, key, pattern) == run_glob(theirs, key, pattern)


def run_glob(fn: Any, key: str, pattern: str) -> Any:
    try:
        return ("ok", fn(key, pattern))
    except Exception as exc:  # noqa: BLE001
        return ("error", type(exc))


@pytest.mark.parametrize(
    ("key", "pattern"),
    [
        ("/foo/bar", "/foo/*"), ("/foo", "/foo/*"), ("/foo/bar/baz", "/foo/*"), ("/foobar", "/foo*"),
        ("/foo/bar", "/foo*"), ("/foo", "/foo/**"), ("/foo/a/b", "/foo/**"), ("/foo/a/b", "/foo/**/b"),
        ("/a/b", "*/b"), ("//a", "/a"), ("/a/", "/a"), (".x", "*"), ("/a/.x", "/a/*"), ("é", "?"),
        ("/x/a", "/x/{a,b}"), ("", ""), ("", "*"), ("/a/../b", "/b"),
    ],
)  # fmt: skip
def test_glob_match_follows_wcmatch_like_pycasbin_2(key: str, pattern: str) -> None:
    """The globMatch cases where pycasbin 2.x (wcmatch) differs from 1.x answer as 2.x does."""
    from casbin.util import glob_match as theirs

    from policy_engine.engine.functions import glob_match as ours

    assert run_glob(ours, key, pattern) == run_glob(theirs, key, pattern)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(
    st.sampled_from([r"^\w+$", r"^\d+$", r"^\s*x", r"(?i)^é", r"^[a-z]+$", r"^.{2}$", r"\bx", r"^(a)\1$",
                     r"^(?=a)\w", r"^\W", "^[", r"^\S+$"]),
    st.text(alphabet="aAxé٣١ \u00a0\u2003É_ß\u0130", max_size=5),
)  # fmt: skip
def test_regex_match_agrees_with_pycasbin_on_unicode(pattern: str, key: str) -> None:
    """regexMatch keeps Python's `re.match` semantics (Unicode `\\w`, `\\d`, `\\s`, case
    folding, backreferences, lookarounds, errors) exactly as pycasbin."""
    from casbin.util import regex_match as theirs

    from policy_engine.engine.functions import regex_match as ours

    assert run_glob(ours, key, pattern) == run_glob(theirs, key, pattern)
