"""How a policy set compares ids: its declaration, folding of rules and requests, and what is
refused because it cannot be folded exactly."""

from __future__ import annotations

import pytest

from policy_engine.actions import Action, Party, ResourceRef, decide_action
from policy_engine.bundle import Bundle, compile_bundle, run_bundle_tests
from policy_engine.bundle.ids import fold_action, fold_rules
from policy_engine.bundle.schema import CASEFOLD, EXACT, parse_schema
from policy_engine.errors import BundleError

MODEL = """\
[request_definition]
r = sub, dom, obj, act

[policy_definition]
p = sub, dom, obj, act, cond, eft

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = g(r.sub, p.sub, r.dom) && keyMatch(r.dom, p.dom) && keyMatch(r.obj, p.obj) && r.act == p.act && eval(p.cond)
"""


def action(resource: str, subject: str = "Ann", **attributes: object) -> Action:
    kind, _, rid = resource.partition(":")
    return Action("Acme", Party(subject, attributes), "Invoke", ResourceRef(kind, rid))


def test_id_fields_fold_and_conditions_and_effects_do_not() -> None:
    """Role rules and the fields compared with ids fold; a condition (True, r.sub.Tier) and the effect keep their case."""
    text = "g, Ann, Staff, Acme\np, Staff, *, tool:getWeather, Invoke, r.sub.Tier == 'Gold', allow\n"
    assert fold_rules(MODEL, text) == (
        "g, ann, staff, acme\np, staff, *, tool:getweather, invoke, r.sub.Tier == 'Gold', allow\n"
    )


def test_exact_declaration_keeps_rules_as_written() -> None:
    """With ids: {compare: exact}, the rules are compiled exactly as written."""
    text = "p, Staff, *, tool:getWeather, invoke, True, allow\n"
    assert fold_rules(MODEL, text, "ids: {compare: exact}\n") == text


def test_regex_patterns_fold_outside_escapes() -> None:
    """A regexMatch pattern compared with an id folds its letters but not its escapes (\\D, \\S, \\p{Lu})."""
    model = MODEL.replace("keyMatch(r.obj, p.obj)", "regexMatch(r.obj, p.obj)")
    text = r"p, a, *, ^tool:Get\D+\S\p{Lu}$, invoke, True, allow"
    assert fold_rules(model, text) == r"p, a, *, ^tool:get\D+\S\p{Lu}$, invoke, True, allow"


@pytest.mark.parametrize(
    ("matcher", "where"),
    [
        ("r.sub == 'Root' || g(r.sub, p.sub, r.dom)", "model.conf"),
        ("keyMatch(r.obj, 'tool:Admin*') && r.act == p.act", "model.conf"),
        ("r.obj in ('tool:a', 'tool:Payments') && r.act == p.act", "model.conf"),
        ("r.obj.startswith('tool:Pay') && r.act == p.act", "model.conf"),
        ("regexMatch(r.sub, '^Admin$') && r.act == p.act", "model.conf"),
    ],
)
def test_unfolded_literal_compared_with_an_id_is_refused(matcher: str, where: str) -> None:
    """A literal compared with a folded id would never match: refused, naming the file and the literal."""
    model = MODEL.replace(MODEL.splitlines()[-1], f"m = {matcher}")
    with pytest.raises(BundleError) as caught:
        fold_rules(model, "p, a, *, tool:x, invoke, True, allow\n")
    assert caught.value.problems[0].file == where and "casefold" not in str(caught.value).split(":")[0]


def test_folded_literals_and_pattern_escapes_are_accepted() -> None:
    """Literals already folded, and a regex literal whose only capitals are escapes (\\D), are accepted."""
    model = MODEL.replace(MODEL.splitlines()[-1], r"m = regexMatch(r.obj, '^tool:\D+$') && r.sub == 'root' && r.act == p.act")
    assert fold_rules(model, "p, a, *, tool:x, Invoke, True, allow\n") == "p, a, *, tool:x, invoke, True, allow\n"


def test_unfolded_literal_in_a_condition_is_refused_with_its_line() -> None:
    """`r.sub == 'Mallory'` in an eval() condition is refused with policy.csv and its line."""
    text = "p, a, *, tool:x, invoke, True, allow\np, a, *, tool:y, invoke, r.sub == 'Mallory', deny\n"
    with pytest.raises(BundleError) as caught:
        fold_rules(MODEL, text)
    problem = caught.value.problems[0]
    assert (problem.file, problem.line) == ("policy.csv", 2) and "'mallory'" in problem.message


def test_field_compared_with_an_id_and_an_attribute_must_be_folded_already() -> None:
    """A field compared with an id and with an attribute is refused unless already folded."""
    model = MODEL.replace(
        MODEL.splitlines()[-1], "m = r.sub == p.sub && (r.obj.team == p.sub || r.act == p.act) && eval(p.cond)"
    )
    with pytest.raises(BundleError) as caught:
        fold_rules(model, "p, Ann, *, tool:x, invoke, True, allow\n")
    assert caught.value.problems[0].line == 1
    # p.obj is not compared with anything here: kept as written.
    assert fold_rules(model, "p, ann, *, tool:X, invoke, True, allow\n") == "p, ann, *, tool:X, invoke, True, allow\n"


def test_request_ids_fold_and_a_folded_request_is_the_same_object() -> None:
    """fold_action folds tenant, subject, actor, action and resource id; attributes and kind are kept."""
    folded = fold_action(Action("Acme", Party("Ann", {"Tier": "Gold"}), "Invoke", ResourceRef("tool", "getWeather"), Party("Bot")))
    assert (folded.tenant, folded.subject.id, folded.actor.id, folded.action, folded.resource.id) == (
        "acme", "ann", "bot", "invoke", "getweather",
    )
    assert folded.subject.attributes == {"Tier": "Gold"}
    assert fold_action(folded) is folded


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", CASEFOLD), ("ids: {compare: exact}\n", EXACT), ("ids: {compare: casefold}\n", CASEFOLD), ("ids: {}\n", CASEFOLD)],
)
def test_ids_declaration(text: str, expected: str) -> None:
    """schema.yaml declares how ids compare; case-folded when it says nothing."""
    assert parse_schema(text).id_compare == expected


@pytest.mark.parametrize("declared", ["ids: {compare: lower}", "ids: exact", "ids: {compare: exact, scripts: any}"])
def test_bad_ids_declaration_names_file_and_line(declared: str) -> None:
    """A bad ids declaration is refused with schema.yaml and its line."""
    text = f"subject:\n  mfa: {{type: bool}}\n{declared}\n"
    with pytest.raises(BundleError) as caught:
        parse_schema(text)
    problem = caught.value.problems[0]
    assert (problem.file, problem.line) == ("schema.yaml", 3)
    with pytest.raises(BundleError):
        compile_bundle(Bundle("s", MODEL, "p, a, *, tool:x, invoke, True, allow\n", {}, text))


def test_bundle_tests_decide_as_the_server_does() -> None:
    """A bundle's tests see the same folding: GetWeather is denied by a deny on getweather."""
    rules = "g, ann, staff, acme\np, staff, *, tool:*, invoke, True, allow\np, staff, *, tool:getweather, invoke, True, deny\n"
    tests = {
        "tests/t_test.yaml": "tests:\n"
        "  - {tenant: acme, subject: {id: ann}, action: invoke, resource: {kind: tool, id: GetWeather}, expect: deny}\n"
            "  - {tenant: ACME, subject: {id: Ann}, action: invoke, resource: {kind: tool, id: getweather}, expect: deny}\n"
        "  - {tenant: acme, subject: {id: ann}, action: invoke, resource: {kind: tool, id: other}, expect: allow}\n"
    }
    bundle = Bundle("s", MODEL, rules, tests)
    assert run_bundle_tests(bundle, compile_bundle(bundle)).passed
    exact = Bundle("s", MODEL, rules, tests, "ids: {compare: exact}\n")
    failed = run_bundle_tests(exact, compile_bundle(exact)).failures
    assert [result.line for result in failed] == [2]  # compared exactly, tool:GetWeather is another tool


def test_folded_engine_matches_folded_requests() -> None:
    """A rule written tool:getWeather allows getweather; the unfolded request would not match it."""
    engine = compile_bundle(Bundle("s", MODEL, "g, Ann, staff, acme\np, staff, *, tool:getWeather, invoke, True, allow\n"))
    assert decide_action(engine, fold_action(action("tool:GETWEATHER"))).allowed
    assert not decide_action(engine, action("tool:getWeather")).allowed


IP_MODEL = """\
[request_definition]
r = sub, obj, act, ctx

[policy_definition]
p = sub, obj, act, net, eft

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = r.sub == p.sub && r.obj == p.obj && r.act == p.act && ipMatch(r.ctx.ip, p.net)
"""


@pytest.mark.parametrize("schema", ["", "ids: {compare: exact}\n"])
def test_ipv4_mapped_networks_in_rules_become_ipv4(schema: str) -> None:
    """A rule network written IPv4-mapped or -compatible matches the canonical (IPv4) address, in either id mode."""
    text = "p, a, t, x, ::ffff:10.0.0.0/104, deny\np, a, t, x, ::10.1.0.0/112, deny\np, a, t, x, ::/0, allow\n"
    folded = fold_rules(IP_MODEL, text, schema).splitlines()
    assert folded == ["p, a, t, x, 10.0.0.0/8, deny", "p, a, t, x, 10.1.0.0/16, deny", "p, a, t, x, ::/0, allow"]


def test_ipv4_mapped_network_literal_in_the_matcher_is_refused() -> None:
    """A mapped network written in the matcher could never match a canonical address: refused, naming the fix."""
    model = IP_MODEL.replace("ipMatch(r.ctx.ip, p.net)", "!ipMatch(r.ctx.ip, '::ffff:10.0.0.0/104')")
    with pytest.raises(BundleError) as caught:
        fold_rules(model, "p, a, t, x, ::/0, allow\n", "ids: {compare: exact}\n")
    assert caught.value.problems[0].file == "model.conf" and "'10.0.0.0/8'" in caught.value.problems[0].message
