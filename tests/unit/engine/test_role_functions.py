"""pycasbin's enforcer API on Engine: matching functions, link conditions, enforce_ex, contexts.

Each scenario is registered the same way on both sides (pycasbin's own `casbin.util`
callables on pycasbin, the same callables or a built-in's name on the Engine) and every
request of a product, edge strings included, is compared with a freshly loaded pycasbin
enforcer: pycasbin's role managers remember the names earlier queries created, so only a
fresh enforcer answers every request the same way each time (see engine/pattern_roles.py).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from collections.abc import Callable
from typing import Any


import casbin.util as cu
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from casbin.core_enforcer import EnforceContext as CasbinContext

from policy_engine.engine import Engine
from policy_engine.errors import EvaluationError

from .oracle import assert_same, oracle

EDGES = ["", " ", "*", ".*", "..", "../x", "é", "x" * 300]

PATTERN_MODEL = """
[request_definition]
r = sub, obj, act
[policy_definition]
p = sub, obj, act
[role_definition]
g = _, _
g2 = _, _
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = g(r.sub, p.sub) && g2(r.obj, p.obj) && r.act == p.act
"""
PATTERN_POLICY = """
p, alice, book_group, GET
p, alice, pen_group, GET
p, bob, /book/*, GET
p, book_reader, /pen/1, POST
g, /book/:id, book_group
g, alice, /user/:name
g, carol, book_reader
g2, /book/:id, book_group
g2, /pen/:id, pen_group
g2, /book2/{id}, book_group
g2, /pen2/{id}, pen_group
g2, /pen/**, pen_group
"""
DOMAIN_MODEL = """
[request_definition]
r = sub, dom, obj, act
[policy_definition]
p = sub, dom, obj, act
[role_definition]
g = _, _, _
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = g(r.sub, p.sub, r.dom) && r.dom == p.dom && r.obj == p.obj && r.act == p.act
"""
DOMAIN_POLICY = """
p, admin, domain1, data1, read
p, admin, domain2, data2, write
p, user, domain1, data1, read
g, alice, admin, *
g, bob, admin, domain2
g, carol, user, domain*
g, /u/:id, user, domain1
g, dave, /u/*, domain1
"""
TEMPORAL_MODEL = """
[request_definition]
r = sub, obj, act
[policy_definition]
p = sub, obj, act
[role_definition]
g = _, _, (_, _)
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act
"""
TEMPORAL_POLICY = """
p, alice, data1, read
p, data2_admin, data2, write
p, data3_admin, data3, read
p, data4_admin, data4, write
p, data5_admin, data5, read
g, alice, data2_admin, 0000-01-01 00:00:00, 0000-01-02 00:00:00
g, alice, data3_admin, 0000-01-01 00:00:00, 9999-12-30 00:00:00
g, alice, data4_admin, _, _
g, alice, data5_admin, _, bad time
g, data3_admin, data4_admin, 1, 2
"""
DOMAIN_TEMPORAL_MODEL = """
[request_definition]
r = sub, dom, obj, act
[policy_definition]
p = sub, dom, obj, act
[role_definition]
g = _, _, _, (_, _)
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = g(r.sub, p.sub, r.dom) && r.dom == p.dom && r.obj == p.obj && r.act == p.act
"""
DOMAIN_TEMPORAL_POLICY = """
p, alice, domain1, data1, read
p, data2_admin, domain2, data2, write
p, data3_admin, domain3, data3, read
g, alice, data2_admin, domain2, 0000-01-01 00:00:00, 0000-01-02 00:00:00
g, alice, data3_admin, domain3, 0000-01-01 00:00:00, 9999-12-30 00:00:00
g, alice, data2_admin, domain3, _, _
"""

Setup = Callable[[Any], Any]


def _compare(model: str, policy: str, setup: Setup, product: list[list[str]]) -> int:
    engine = Engine.from_text(model, policy)
    setup(engine)
    count = 0
    for values in itertools.product(*product):
        enforcer = oracle(model, policy)
        setup(enforcer)
        assert_same(engine, enforcer, values)
        count += 1
    return count


@pytest.mark.parametrize(
    "fn", [cu.key_match2, cu.key_match3, cu.key_match4, cu.glob_match, cu.regex_match, cu.key_match]
)
def test_pattern_object_groups_decide_as_pycasbin(fn: Callable[..., Any]) -> None:
    """g2 names matched by keyMatch2..4, globMatch, regexMatch, keyMatch decide as pycasbin."""
    objects = ["/book/1", "/book/2/3", "/pen/1", "/pen/a/b", "/book2/1", "book_group", "/book/:id",
               *EDGES]  # fmt: skip
    subjects = ["alice", "bob", "carol", "/book/1", "/user/x", *EDGES[:4]]
    assert _compare(
        PATTERN_MODEL, PATTERN_POLICY, lambda e: e.add_named_matching_func("g2", fn),
        [subjects, objects, ["GET", "POST"]],
    )  # fmt: skip


def test_both_role_definitions_with_patterns_decide_as_pycasbin() -> None:
    """Patterns on g (subjects) and g2 (objects) together decide as pycasbin."""

    def setup(e: Any) -> None:
        e.add_named_matching_func("g", cu.key_match2)
        e.add_named_matching_func("g2", cu.key_match2)

    assert _compare(
        PATTERN_MODEL, PATTERN_POLICY, setup,
        [["alice", "/book/7", "/user/z", "carol", "*"], ["/book/1", "/pen/2", "*"], ["GET", "POST"]],
    )  # fmt: skip


@pytest.mark.parametrize(
    ("names", "domains"),
    [(None, cu.key_match2), (None, cu.key_match), (cu.key_match2, cu.key_match2),
     (cu.glob_match, None), (cu.regex_match, cu.glob_match)],
)  # fmt: skip
def test_domain_and_name_patterns_decide_as_pycasbin(names: Any, domains: Any) -> None:
    """Domain patterns (`*`, `domain*`) and name patterns in domain roles decide as pycasbin."""

    def setup(e: Any) -> None:
        if names is not None:
            e.add_named_matching_func("g", names)
        if domains is not None:
            e.add_named_domain_matching_func("g", domains)

    assert _compare(
        DOMAIN_MODEL, DOMAIN_POLICY, setup,
        [["alice", "bob", "carol", "/u/1", "dave", "*", ""], ["domain1", "domain2", "domain3", "*", ""],
         ["data1", "data2"], ["read", "write"]],
    )  # fmt: skip


def test_temporal_links_decide_as_pycasbin() -> None:
    """Links with timeMatch conditions hold only inside their window; a condition that raises
    on its parameters is an error on both sides; links without a function always hold."""

    def setup(e: Any) -> None:
        for role in ("data2_admin", "data3_admin", "data4_admin", "data5_admin"):
            e.add_named_link_condition_func("g", "alice", role, cu.time_match_func)
        e.add_named_link_condition_func("g", "data3_admin", "data4_admin", lambda a, b: a < b)

    assert _compare(
        TEMPORAL_MODEL, TEMPORAL_POLICY, setup,
        [["alice", "data3_admin", "bob"], [f"data{i}" for i in range(1, 6)], ["read", "write"]],
    )  # fmt: skip


def test_domain_temporal_links_decide_as_pycasbin() -> None:
    """Conditions registered per domain apply in that domain only, with that link's params."""

    def setup(e: Any) -> None:
        for i in (2, 3):
            e.add_named_domain_link_condition_func(
                "g", "alice", f"data{i}_admin", f"domain{i}", cu.time_match_func
            )
        e.add_named_link_condition_func("g", "alice", "data2_admin", lambda *a: False)

    assert _compare(
        DOMAIN_TEMPORAL_MODEL, DOMAIN_TEMPORAL_POLICY, setup,
        [["alice", "bob"], ["domain1", "domain2", "domain3", ""], ["data1", "data2", "data3"],
         ["read", "write"]],
    )  # fmt: skip


def test_builtins_by_name_or_callable_keep_the_index_and_the_cache() -> None:
    """A built-in given by name, by our callable or by pycasbin's decides the same and keeps
    the decision cache; a custom callable is honoured and turns the cache off."""
    answers = []
    for fn in ("keyMatch2", cu.key_match2, cu.key_match2_func):
        engine = Engine.from_text(PATTERN_MODEL, PATTERN_POLICY)
        assert engine.add_named_matching_func("g2", fn)
        answers.append([engine.enforce("alice", o, "GET") for o in ("/book/1", "/pen/1", "/x")])
        assert engine.cache_hit_ratio is not None  # decisions were cached
        assert engine._default._plan is not None  # and the rule index applies
    assert answers == [[True, True, False]] * 3
    custom = Engine.from_text(PATTERN_MODEL, PATTERN_POLICY)
    custom.add_named_matching_func("g2", lambda name, pattern: name.startswith(pattern[:5]))
    assert custom.enforce("alice", "/book/zzz", "GET")
    assert custom.cache_hit_ratio is None


def test_setup_calls_refuse_what_pycasbin_refuses() -> None:
    """Matching functions need a plain or domain role definition, link conditions a
    conditional one: otherwise the call answers False and changes nothing, as in pycasbin."""
    engine = Engine.from_text(PATTERN_MODEL, PATTERN_POLICY)
    assert not engine.add_named_matching_func("g9", cu.key_match2)
    assert not engine.add_named_link_condition_func("g", "a", "b", cu.time_match_func)
    temporal = Engine.from_text(TEMPORAL_MODEL, TEMPORAL_POLICY)
    assert not temporal.add_named_matching_func("g", cu.key_match2)
    with pytest.raises(ValueError, match="unknown built-in"):
        engine.add_named_matching_func("g2", "keyMatch9")


def test_enforce_ex_batch_and_contexts_follow_pycasbin() -> None:
    """enforce_ex returns pycasbin's (decision, rule values); batch_enforce is enforce per
    request; pycasbin's own EnforceContext selects r2/p2/m2 like ours does."""
    model = PATTERN_MODEL.replace("p = sub, obj, act", "p = sub, obj, act\np2 = sub, act").replace(
        "r = sub, obj, act", "r = sub, obj, act\nr2 = sub, act"
    ) + "m2 = r2.sub == p2.sub && r2.act == p2.act\n"
    policy = PATTERN_POLICY + "p2, dave, fly\n"
    engine = Engine.from_text(model, policy)
    engine.add_named_matching_func("g2", cu.key_match2)
    enforcer = oracle(model, policy)
    enforcer.add_named_matching_func("g2", cu.key_match2)
    requests = [("alice", "/book/1", "GET"), ("bob", "/x", "GET"), ("carol", "/pen/1", "POST")]
    assert [engine.enforce_ex(*r) for r in requests] == [
        tuple(enforcer.enforce_ex(*r)) for r in requests
    ]
    assert engine.batch_enforce(requests) == enforcer.batch_enforce(requests) == [True, False, True]
    theirs = CasbinContext("r2", "p2", "e", "m2")
    assert engine.enforce(theirs, "dave", "fly") is enforcer.enforce(theirs, "dave", "fly") is True
    assert engine.enforce(engine.new_enforce_context("2"), "dave", "walk") is False


NAMES = ["alice", "bob", "admin", "/a/1", "/a/:id", "/a/*", "/a/{id}", "/b/**", "*", ".*", "^/a/.*$",
         "a*", "grp", "/a/1/2", "10.0.0.1", "10.0.0.0/8", ""]  # fmt: skip
MATCHERS = [cu.key_match, cu.key_match2, cu.key_match3, cu.key_match4, cu.key_match5, cu.glob_match,
            cu.regex_match, cu.ip_match]  # fmt: skip
GENERATED_MODEL = """
[request_definition]
r = sub, dom, obj
[policy_definition]
p = sub, dom, obj
[role_definition]
g = _, _, _
g2 = _, _
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = g(r.sub, p.sub, r.dom) && g2(r.obj, p.obj) && keyMatch(r.dom, p.dom)
"""


@st.composite
def pattern_scenarios(draw: st.DrawFn) -> tuple[str, list[tuple[str, Any]], list[tuple[str, ...]]]:
    """Links among names that are also patterns, matching functions on g/g2, requests."""
    name = st.sampled_from(NAMES)
    domain = st.sampled_from(["d1", "d2", "d*", "*", "d1/x"])
    lines = [f"p, {draw(name)}, {draw(domain)}, {draw(name)}" for _ in range(draw(st.integers(1, 4)))]
    lines += [f"g, {draw(name)}, {draw(name)}, {draw(domain)}" for _ in range(draw(st.integers(0, 5)))]
    lines += [f"g2, {draw(name)}, {draw(name)}" for _ in range(draw(st.integers(0, 5)))]
    setups: list[tuple[str, Any]] = []
    for call in ("g", "g2", "g-domain"):
        if draw(st.booleans()):
            setups.append((call, draw(st.sampled_from(MATCHERS))))
    requests = [(draw(name), draw(domain), draw(name)) for _ in range(6)]
    return "\n".join(l for l in lines if ", ," not in l and not l.endswith(", ")), setups, requests


@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(pattern_scenarios())
def test_generated_pattern_roles_decide_as_pycasbin(scenario: tuple[str, list[tuple[str, Any]], list[tuple[str, ...]]]) -> None:
    """Random links whose names are patterns, under any built-in matching function on names
    and domains, decide every request as a freshly loaded pycasbin enforcer."""
    policy, setups, requests = scenario

    def setup(target: Any) -> None:
        for call, fn in setups:
            if call == "g-domain":
                target.add_named_domain_matching_func("g", fn)
            else:
                target.add_named_matching_func(call, fn)

    try:
        engine = Engine.from_text(GENERATED_MODEL, policy)
    except Exception:  # noqa: BLE001 - a policy pycasbin also refuses is not this test's subject
        return
    setup(engine)
    for values in requests:
        enforcer = oracle(GENERATED_MODEL, policy)
        setup(enforcer)
        assert_same(engine, enforcer, values)


def _condition(*params: str) -> bool:
    """A link condition that holds, fails, or raises according to its first param."""
    return {"_": True, "yes": True, "no": False}[params[0]]


@st.composite
def conditional_scenarios(draw: st.DrawFn) -> tuple[str, str, list[tuple[str, ...]], list[tuple[str, ...]]]:
    """A conditional (maybe domain) model, links with params, conditions on some links."""
    with_domain = draw(st.booleans())
    names = st.sampled_from(["alice", "bob", "r1", "r2", "r3"])
    domains = st.sampled_from(["d1", "d2"])
    param = st.sampled_from(["_", "yes", "no"])
    model = TEMPORAL_MODEL if not with_domain else DOMAIN_TEMPORAL_MODEL
    lines, links = [], []
    for _ in range(draw(st.integers(1, 7))):
        user, role, d = draw(names), draw(names), draw(domains)
        links.append((user, role, d if with_domain else ""))
        domain_part = f"{d}, " if with_domain else ""
        lines.append(f"g, {user}, {role}, {domain_part}{draw(param)}, _")
    for _ in range(draw(st.integers(1, 4))):
        domain_part = f"{draw(domains)}, " if with_domain else ""
        lines.append(f"p, {draw(names)}, {domain_part}data, read")
    chosen = [link for link in links if draw(st.booleans())]
    if with_domain:
        requests = [(draw(names), draw(domains), "data", "read") for _ in range(5)]
    else:
        requests = [(draw(names), "data", "read") for _ in range(5)]
    return model, "\n".join(lines), chosen, requests


@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(conditional_scenarios())
def test_generated_link_conditions_decide_as_pycasbin(scenario: Any) -> None:
    """Random conditional links, with conditions that hold or fail on their params, decide
    every request as pycasbin."""
    model, policy, chosen, requests = scenario

    def setup(target: Any) -> None:
        for user, role, domain in chosen:
            if domain:
                target.add_named_domain_link_condition_func("g", user, role, domain, _condition)
            else:
                target.add_named_link_condition_func("g", user, role, _condition)

    engine = Engine.from_text(model, policy)
    setup(engine)
    for values in requests:
        enforcer = oracle(model, policy)
        setup(enforcer)
        assert_same(engine, enforcer, values)


def test_a_condition_that_raises_beside_the_target_fails_the_decision() -> None:
    """A condition raising on a link of the level where the target is found fails the walk:
    pycasbin fails or allows depending on its set order, the engine always fails (a deny)."""
    policy = "p, r2, data, read\ng, alice, bob, _, _\ng, alice, r2, _, _\ng, bob, alice, boom, _\n"
    engine = Engine.from_text(TEMPORAL_MODEL, policy)
    engine.add_named_link_condition_func("g", "bob", "alice", _condition)
    for _ in range(3):  # every time, not depending on any order
        with pytest.raises(EvaluationError, match="KeyError"):
            engine.decide_uncached("alice", "data", "read")


def test_a_builtin_replaced_by_add_function_is_called_and_never_indexed_as_the_builtin() -> None:
    """add_function("keyMatch", custom) makes matchers call the custom function (the index
    must not assume keyMatch's semantics any more), as pycasbin's function map does."""
    upstream = Path(__file__).resolve().parents[2] / "fixtures" / "upstream" / "reconstructed"
    model = (upstream / "keymatch_model.conf").read_text(encoding="utf-8")
    policy = (upstream / "keymatch_policy.csv").read_text(encoding="utf-8")

    def suffix(key: str, pattern: str) -> bool:
        return key.endswith(pattern[-3:])

    def setup(target: Any) -> None:
        target.add_function("keyMatch", suffix)
        target.add_function("regexMatch", lambda key, pattern: key != "DELETE")

    engine = Engine.from_text(model, policy)
    setup(engine)
    assert _compare(model, policy, setup, [["alice", "bob", "cathy"],
                    ["/alice_data/test", "/xx/ata", "/cathy_data", "/bob_data/1", "zz*"],
                    ["GET", "POST", "DELETE"]])  # fmt: skip
    assert engine.enforce("alice", "/x/resource1", "POST")  # by the suffix, not keyMatch
    assert engine.cache_hit_ratio is None  # custom functions are not cached
