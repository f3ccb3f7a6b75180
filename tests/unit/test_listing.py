"""ListAllowed's core: never list what Check denies, over the example policy and generated ones."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policy_engine.actions import Action, Party, ResourceRef, decide_action
from policy_engine.bundle import compile_bundle, load_bundle
from policy_engine.engine import Engine
from policy_engine.service.listing import Listing, list_allowed
from policy_engine.service.rules import literal_prefix, prefix_of_pattern
from policy_engine.service.validation import validate_action

ROOT = Path(__file__).resolve().parents[2]
MODEL = (ROOT / "policies" / "default" / "model.conf").read_text()
MODELS = {
    "keyMatch": MODEL,
    "globMatch": MODEL.replace("keyMatch(r.obj, p.obj)", "globMatch(r.obj, p.obj)"),
    "regexMatch": MODEL.replace("keyMatch(r.obj, p.obj)", "regexMatch(r.obj, p.obj)"),
    # The matcher itself excludes resources: no rule says so, so only the matcher can tell.
    "literal in the matcher": MODEL.replace(
        "keyMatch(r.obj, p.obj)", 'keyMatch(r.obj, p.obj) && r.obj != "tool:q" && r.obj != "data:q"'),
}
SUFFIXES = ("q", "q/r", "zz", "a", "a/x", "x/y/z", "b.c", "0")
RESOURCE_ATTRIBUTES = ({}, {"level": 0}, {"level": 5}, {"level": 2, "owner": "u1"})


@pytest.fixture(scope="module")
def example() -> Engine:
    return compile_bundle(load_bundle(ROOT / "policies" / "default"))


def allowed(engine: Engine, tenant: str, subject: Party, actor: Party | None, action: str, key: str, attrs: dict) -> bool | None:  # type: ignore[type-arg]
    """Check's answer for a key, or None when Check would refuse the request as invalid."""
    kind, _, rid = key.partition(":")
    request = Action(tenant, subject, action, ResourceRef(kind, rid, attrs), actor)
    try:
        validate_action(request)
    except Exception:  # noqa: BLE001 - invalid ids are outside the promise
        return None
    return decide_action(engine, request).allowed


def assert_never_denied(engine: Engine, listing: Listing, tenant: str, subject: Party, actor: Party | None, action: str, kind: str) -> None:
    for rid in listing.resource_ids:
        for attrs in RESOURCE_ATTRIBUTES:
            assert allowed(engine, tenant, subject, actor, action, f"{kind}:{rid}", attrs) is True, (rid, attrs)
    for pattern in listing.patterns:
        prefix = prefix_of_pattern(pattern)
        assert prefix is not None and prefix.startswith(f"{kind}:"), pattern
        for suffix in SUFFIXES:
            for attrs in RESOURCE_ATTRIBUTES:
                verdict = allowed(engine, tenant, subject, actor, action, prefix + suffix, attrs)
                assert verdict in (True, None), (pattern, suffix, attrs)


class TestExamplePolicy:
    @pytest.mark.parametrize("kind", ["tool", "data", "model", "memory"])
    @pytest.mark.parametrize("action", ["invoke", "read", "write", "generate"])
    @pytest.mark.parametrize(
        ("subject", "actor"),
        [
            (Party("alice", {"mfa": True, "clearance": 3}), None),
            (Party("bob", {"mfa": False, "clearance": 2}), None),
            (Party("carol", {"mfa": True, "clearance": 2}), Party("agent:researcher")),
            (Party("dave", {"mfa": True, "clearance": 0}), Party("agent:helper")),
            (Party("erin", {"mfa": True}), Party("agent:ops")),
            (Party("mallory", {"mfa": True}), None),
        ],
    )
    def test_nothing_listed_is_denied(self, example, subject, actor, action, kind) -> None:  # type: ignore[no-untyped-def]
        """For every example subject, actor, action and kind, each listed id and pattern is allowed by Check."""
        for tenant in ("acme", "globex"):
            listing = list_allowed(example, tenant=tenant, subject=subject, actor=actor, action=action, kind=kind)
            assert_never_denied(example, listing, tenant, subject, actor, action, kind)

    def test_viewer_gets_the_public_prefix(self, example) -> None:  # type: ignore[no-untyped-def]
        """A viewer's readable data is the pattern data:public/*, complete (not partial)."""
        listing = list_allowed(example, tenant="acme", subject=Party("dave"), actor=None, action="read", kind="data")
        assert listing.patterns == ("data:public/*",)
        assert not listing.partial

    def test_pattern_with_a_deny_inside_is_not_listed(self, example) -> None:  # type: ignore[no-untyped-def]
        """An admin's tool:* has exceptions (payments is denied): concrete tools are listed, the pattern not, and the answer is partial."""
        listing = list_allowed(
            example, tenant="acme", subject=Party("alice", {"mfa": True}), actor=None, action="invoke", kind="tool"
        )
        assert "tool:*" not in listing.patterns
        assert "payments_transfer" not in listing.resource_ids
        assert {"web_search", "sql_query", "shell_exec"} <= set(listing.resource_ids)
        assert listing.partial
        assert any("tool:*" in reason for reason in listing.partial_reasons)

    def test_resource_attribute_conditions_make_it_partial(self, example) -> None:  # type: ignore[no-untyped-def]
        """An analyst's data access depends on each scope's classification: nothing is listed and the answer says why."""
        listing = list_allowed(
            example, tenant="acme", subject=Party("carol", {"clearance": 2}), actor=None, action="read", kind="data"
        )
        assert listing.partial
        assert any("resource attributes" in reason for reason in listing.partial_reasons)

    def test_agent_limits_the_listing(self, example) -> None:  # type: ignore[no-untyped-def]
        """Through the helper agent a viewer gets only what both may use."""
        listing = list_allowed(
            example, tenant="acme", subject=Party("dave"), actor=Party("agent:helper"), action="generate", kind="model"
        )
        assert listing.resource_ids == ("gpt-small",)
        assert not listing.partial


def test_a_matcher_that_reads_the_resource_itself_lists_no_pattern() -> None:
    """A matcher that compares r.obj with a literal can deny keys under any rule pattern: no
    pattern is listed, and the answer says why it is partial."""
    model = MODEL.replace("keyMatch(r.obj, p.obj)", 'keyMatch(r.obj, p.obj) && r.obj != "tool:admin_panel"')
    engine = Engine.from_text(model, "p, alice, *, tool:*, invoke, True, allow\np, alice, *, data:web/*, read, True, allow\n")
    listing = list_allowed(engine, tenant="acme", subject=Party("alice"), actor=None, action="invoke", kind="tool")
    assert listing.patterns == ()
    assert listing.partial
    assert any("matcher reads the resource" in reason and "r.obj !=" in reason for reason in listing.partial_reasons)
    assert allowed(engine, "acme", Party("alice"), None, "invoke", "tool:admin_panel", {}) is False
    unchanged = Engine.from_text(MODEL, "p, alice, *, tool:*, invoke, True, allow\n")
    assert list_allowed(unchanged, tenant="acme", subject=Party("alice"), actor=None, action="invoke", kind="tool").patterns == ("tool:*",)


class TestPrefixes:
    @pytest.mark.parametrize(
        ("value", "prefix"),
        [("tool:web_search", "tool:web_search"), ("data:public/*", "data:public"), ("a|b", ""), ("x/:id", ""), ("ab.c", "a"), ("*", "")],
    )
    def test_literal_prefix_is_conservative(self, value: str, prefix: str) -> None:
        """The literal prefix stops before anything a matching function could read as a pattern."""
        assert literal_prefix(value) == prefix


# ---- generated policies ----

SUBJECT_IDS = ("u1", "u2", "u3", "stranger")
OBJECTS = ("{k}:a", "{k}:b", "{k}:a/x", "{k}:a/*", "{k}:*", "{k}:a*", "{k}:b/c/*", "{k}:b/c/d", "*", "{k}:a/:id", "{k}:b.c")
CONDITIONS = ("True", "r.sub.mfa == True", "r.obj.level <= 2", "r.sub.level >= r.obj.level")

role_rules = st.lists(
    st.tuples(st.sampled_from(("u1", "u2", "u3", "r1", "r2", "a1")), st.sampled_from(("r1", "r2", "r3", "ar")), st.sampled_from(("t1", "t2"))),
    max_size=8,
)
policy_rules = st.lists(
    st.tuples(
        st.sampled_from(("r1", "r2", "r3", "u1", "ar")),
        st.sampled_from(("*", "t1", "t2")),
        st.sampled_from(OBJECTS),
        st.sampled_from(("tool", "data")),
        st.sampled_from(("invoke", "read")),
        st.sampled_from(CONDITIONS),
        st.sampled_from(("allow", "allow", "deny")),
    ),
    min_size=1,
    max_size=14,
)


def build(model: str, roles: list[tuple[str, str, str]], rules: list[tuple[str, ...]]) -> Engine:
    lines = [f"g, {member}, {role}, {domain}" for member, role, domain in roles if member != role]
    for sub, dom, obj, kind, act, cond, eft in rules:
        lines.append(f"p, {sub}, {dom}, {obj.format(k=kind)}, {act}, {cond}, {eft}")
    return Engine.from_text(model, "\n".join(lines) + "\n")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    model=st.sampled_from(sorted(MODELS)),
    roles=role_rules,
    rules=policy_rules,
    subject=st.sampled_from(SUBJECT_IDS),
    mfa=st.booleans(),
    level=st.integers(0, 5),
    with_actor=st.booleans(),
    tenant=st.sampled_from(("t1", "t2")),
    action=st.sampled_from(("invoke", "read")),
    kind=st.sampled_from(("tool", "data")),
)
def test_generated_policies_never_list_a_denied_resource(model, roles, rules, subject, mfa, level, with_actor, tenant, action, kind) -> None:  # type: ignore[no-untyped-def]
    """Over generated roles, rules and models, every listed id and every key under a listed pattern is allowed by Check."""
    engine = build(MODELS[model], roles, rules)
    party = Party(subject, {"mfa": mfa, "level": level})
    actor = Party("a1", {"mfa": True, "level": 5}) if with_actor else None
    if subject in engine.role_names:
        return
    listing = list_allowed(engine, tenant=tenant, subject=party, actor=actor, action=action, kind=kind)
    assert_never_denied(engine, listing, tenant, party, actor, action, kind)
    if listing.partial or model == "regexMatch":  # under regexMatch a literal rule also matches longer keys
        return
    # Not partial: every key the rules name (or that sits under a rule pattern) that Check allows is listed.
    universe = {f"{kind}:{s}" for s in SUFFIXES}
    for _, _, obj, rule_kind, *_ in rules:
        text = obj.format(k=rule_kind)
        start = prefix_of_pattern(text)
        universe.update({text} if start is None else {start + s for s in SUFFIXES})
    covered_ids = {f"{kind}:{rid}" for rid in listing.resource_ids}
    prefixes = [p[:-1] for p in listing.patterns]
    for key in sorted(universe):
        if not key.startswith(f"{kind}:"):
            continue
        for attrs in RESOURCE_ATTRIBUTES:
            if allowed(engine, tenant, party, actor, action, key, attrs):
                assert key in covered_ids or any(key.startswith(p) for p in prefixes), (key, attrs, listing)
