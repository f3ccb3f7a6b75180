"""Binding LLM actions to a model, and the subject-AND-actor rule."""

from __future__ import annotations

from pathlib import Path

import casbin
import pytest
from casbin.model import Model

from policy_engine.actions import Action, ActionBinder, Party, ResourceRef, decide_action, party_entity
from policy_engine.bundle import compile_bundle, load_bundle, run_bundle_tests
from policy_engine.engine import Engine, Entity

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def engine():  # type: ignore[no-untyped-def]
    return compile_bundle(load_bundle(ROOT / "policies" / "default"))


def act(subject: str, resource: str, action: str = "invoke", actor: str | None = None, **attrs):  # type: ignore[no-untyped-def]
    kind, _, rid = resource.partition(":")
    return Action(
        tenant="acme",
        subject=Party(subject, attrs),
        action=action,
        resource=ResourceRef(kind, rid, {"classification": 1}),
        actor=Party(actor) if actor else None,
    )


class TestSubjectAndActor:
    def test_both_allowed_is_allow(self, engine) -> None:  # type: ignore[no-untyped-def]
        """A viewer using web search through the basic helper agent is allowed."""
        decision = decide_action(engine, act("dave", "tool:web_search", actor="agent:helper"))
        assert decision.allowed
        assert decision.denied_party == ""

    def test_actor_cannot_exceed_its_own_grants(self, engine) -> None:  # type: ignore[no-untyped-def]
        """An admin's request through an agent lacking the tool is denied, naming the actor."""
        decision = decide_action(
            engine, act("alice", "tool:sql_query", actor="agent:helper", mfa=True)
        )
        assert not decision.allowed
        assert decision.denied_party == "actor"
        assert "agent:helper" in decision.reason

    def test_actor_cannot_exceed_its_user(self, engine) -> None:  # type: ignore[no-untyped-def]
        """An operator agent cannot give a viewer a tool the viewer lacks; the subject is named."""
        decision = decide_action(engine, act("dave", "tool:email_send", actor="agent:ops"))
        assert not decision.allowed
        assert decision.denied_party == "subject"

    def test_missing_attribute_is_a_denial_with_reason(self, engine) -> None:  # type: ignore[no-untyped-def]
        """A condition reading an attribute the request lacks denies, saying so."""
        decision = decide_action(engine, act("bob", "tool:shell_exec"))
        assert not decision.allowed
        assert "evaluation error" in decision.reason

    def test_resource_is_kind_colon_id_with_kind_attribute(self) -> None:
        """Rules see the resource as "kind:id" and can read its kind."""
        seen = {}

        class Spy:
            request_tokens = ("obj",)

            def decide(self, obj):  # type: ignore[no-untyped-def]
                seen["obj"] = obj
                from policy_engine.engine import Decision

                return Decision(allowed=False)

            def decide_keyed(self, key, values):  # type: ignore[no-untyped-def]
                return self.decide(*values)

        decide_action(Spy(), act("x", "data:finance/q1"))  # type: ignore[arg-type]
        assert seen["obj"] == "data:finance/q1"
        assert seen["obj"].kind == "data"
        assert seen["obj"].classification == 1


def test_subject_decisions_equal_pycasbin_on_example_policies() -> None:
    """For every example test case, the subject's decision equals pycasbin's enforce on the same values."""
    bundle = load_bundle(ROOT / "policies" / "default")
    engine = compile_bundle(bundle)
    model = Model()
    model.load_model_from_text(bundle.model_text)
    enforcer = casbin.Enforcer(model)
    for line in bundle.policy_text.splitlines():
        if line and not line.startswith("#"):
            parts = [t.strip() for t in line.split(",")]
            if parts[0] == "p":
                enforcer.add_policy(*parts[1:])
            else:
                enforcer.add_named_grouping_policy(parts[0], *parts[1:])
    compared = 0
    for case in run_bundle_tests(bundle, engine).results:
        for party in (case.action.subject, case.action.actor):
            if party is None:
                continue
            action = case.action
            values = [
                Entity(party.id, party.attributes),
                action.tenant,
                Entity(action.resource.key, {**action.resource.attributes, "kind": action.resource.kind}),
                action.action,
            ]
            try:
                expected = enforcer.enforce(*values)
            except Exception:  # noqa: BLE001 - pycasbin raises where our engine reports an error
                expected = None
            try:
                got = engine.enforce(*values)
            except Exception:  # noqa: BLE001
                got = None
            assert got == expected, f"{case.file}:{case.line}: {party.id}"
            compared += 1
    assert compared >= 40


class TestBinderReuse:
    """An ActionBinder decides many actions; what it remembers between them never leaks."""

    def test_repeated_outcomes_name_their_own_party(self, engine) -> None:  # type: ignore[no-untyped-def]
        """The same engine outcome (no rule) for the subject and then the actor is reported
        for each party in its own words, however often it recurs."""
        binder = ActionBinder(engine, "acme", Party("dave"), Party("agent:helper"))
        for _ in range(3):
            by_subject = binder.decide("invoke", ResourceRef("tool", "email_send"), {})
            by_actor = binder.decide("read", ResourceRef("data", "public/reports"), {})
            assert (by_subject.denied_party, by_subject.failure) == ("subject", "no_matching_rule")
            assert "'dave'" in by_subject.reason
            assert (by_actor.denied_party, by_actor.failure) == ("actor", "actor")
            assert "'agent:helper'" in by_actor.reason

    def test_repeated_decisions_equal_a_fresh_binder(self, engine) -> None:  # type: ignore[no-untyped-def]
        binder = ActionBinder(engine, "acme", Party("bob"))
        resources = [ResourceRef("tool", name) for name in ("web_search", "sql_query", "email_send")] * 3
        for resource in resources:
            fresh = ActionBinder(engine, "acme", Party("bob")).decide("invoke", resource, {})
            assert binder.decide("invoke", resource, {}) == fresh

    def test_the_binder_shares_the_engines_cache_entries(self) -> None:
        """The keys a binder assembles are the engine's own: what enforce() cached, the binder
        finds, and an item with other attribute values (or their types) is not mistaken for it."""
        engine = compile_bundle(load_bundle(ROOT / "policies" / "default"))
        subject = Party("carol", {"clearance": 2})
        scope = ResourceRef("data", "finance/q1", {"classification": 2})
        values = (party_entity(subject), "acme", Entity("data:finance/q1", {"classification": 2, "kind": "data"}), "read")
        expected = engine.decide(*values)
        assert engine.cache_hit_ratio == 0.0  # one lookup, a miss
        binder = ActionBinder(engine, "acme", subject)
        assert binder.decide("read", scope, {}).allowed == expected.allowed
        assert engine.cache_hit_ratio == 0.5  # the binder's lookup was a hit
        for other in ({"classification": 3}, {"classification": True}, {"classification": 2.0}):
            binder.decide("read", scope._replace(attributes=other), {})
        assert engine.cache_hit_ratio == 0.2  # three more lookups, all misses

    def test_model_with_one_request_token(self) -> None:
        model = "[request_definition]\nr = sub\n[policy_definition]\np = sub\n" \
            "[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = r.sub == p.sub\n"
        one = Engine.from_text(model, "p, alice\n")
        binder = ActionBinder(one, "acme", Party("alice"))
        assert binder.decide("invoke", ResourceRef("tool", "x"), {}).allowed
        assert not ActionBinder(one, "acme", Party("bob")).decide("invoke", ResourceRef("tool", "x"), {}).allowed
