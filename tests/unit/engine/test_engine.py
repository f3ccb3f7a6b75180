"""The Engine facade: pycasbin's signature, named errors, decisions with rules, cache, sharing."""

from __future__ import annotations

import ast
import threading
from pathlib import Path

import pytest

from policy_engine.engine import EnforceContext, Engine, Entity
from policy_engine.errors import EvaluationError, RequestError

MODEL = """
[request_definition]
r = sub, dom, obj, act
[policy_definition]
p = sub, dom, obj, act, eft
[role_definition]
g = _, _, _
[policy_effect]
e = {effect}
[matchers]
m = g(r.sub, p.sub, r.dom) && r.dom == p.dom && keyMatch(r.obj, p.obj) && r.act == p.act
"""
POLICY = """\
p, reader, acme, /docs/*, read, allow
p, reader, acme, /docs/secret, read, deny
p, writer, acme, /docs/*, write, allow
g, alice, reader, acme
g, bob, writer, acme
g, writer, reader, acme
"""
DENY_OVERRIDE = "!some(where (p.eft == deny))"
ALLOW_AND_DENY = "some(where (p.eft == allow)) && !some(where (p.eft == deny))"


def engine(effect: str = ALLOW_AND_DENY, **kwargs: int) -> Engine:
    return Engine.from_text(MODEL.format(effect=effect), POLICY, **kwargs)


class TestApi:
    def test_introspection(self) -> None:
        """request_tokens, rule_count and role_names describe the loaded texts."""
        e = engine()
        assert e.request_tokens == ("sub", "dom", "obj", "act")
        assert e.rule_count == 6
        assert e.role_names == frozenset({"reader", "writer"})

    def test_from_files(self, tmp_path: Path) -> None:
        """from_files reads the same texts as from_text."""
        (tmp_path / "model.conf").write_text(MODEL.format(effect=ALLOW_AND_DENY))
        (tmp_path / "policy.csv").write_text(POLICY)
        e = Engine.from_files(tmp_path / "model.conf", tmp_path / "policy.csv")
        assert e.enforce("bob", "acme", "/docs/a", "read")

    def test_wrong_number_of_values_is_a_request_error(self) -> None:
        """Too few or too many values raise RequestError, never a decision."""
        with pytest.raises(RequestError):
            engine().enforce("alice", "acme", "/docs/a")
        with pytest.raises(RequestError):
            engine().enforce("alice", "acme", "/docs/a", "read", "x")

    def test_unknown_context_is_a_request_error(self) -> None:
        """An EnforceContext naming definitions the model lacks raises RequestError."""
        with pytest.raises(RequestError):
            engine().enforce(EnforceContext.of("2"), "alice", "acme", "/docs/a", "read")

    def test_matcher_failure_is_an_evaluation_error(self) -> None:
        """A missing attribute read by the matcher raises EvaluationError."""
        text = MODEL.format(effect=ALLOW_AND_DENY).replace("r.act == p.act", "r.sub.mfa == True")
        e = Engine.from_text(text, POLICY)
        with pytest.raises(EvaluationError):
            e.decide(Entity("alice", {}), "acme", "/docs/a", "read")
        assert e.enforce(Entity("alice", {"mfa": True}), "acme", "/docs/a", "x")


class TestMatchedRules:
    def test_deny_rule_explains_a_denial(self) -> None:
        """A denial caused by a deny rule reports that rule."""
        decision = engine().decide("alice", "acme", "/docs/secret", "read")
        assert not decision.allowed
        assert decision.matched[0].values == ("reader", "acme", "/docs/secret", "read", "deny")
        assert decision.matched[0].line == 2

    def test_allow_under_deny_override_reports_first_allow(self) -> None:
        """Where pycasbin reports nothing for an allow, the first matching allow rule is reported."""
        decision = engine(DENY_OVERRIDE).decide("bob", "acme", "/docs/a", "write")
        assert decision.allowed
        assert decision.matched[0].text == "p, writer, acme, /docs/*, write, allow"

    def test_no_match_reports_nothing(self) -> None:
        """When no rule matches, matched is empty (deny-override still allows, as pycasbin)."""
        assert engine().decide("carol", "acme", "/docs/a", "read").matched == ()
        assert engine(DENY_OVERRIDE).decide("carol", "acme", "/x", "read").allowed


class TestCache:
    def test_cached_and_uncached_agree(self) -> None:
        """A cached decision is the uncached decision."""
        e = engine()
        for values in [("alice", "acme", "/docs/a", "read"), ("bob", "acme", "/docs/b", "write")]:
            assert e.decide(*values) == e.decide_uncached(*values) == e.decide(*values)

    def test_entities_with_other_attributes_are_other_keys(self) -> None:
        """Two entities with the same id but different attributes never share a cached decision."""
        text = MODEL.format(effect=ALLOW_AND_DENY).replace("r.act == p.act", "r.sub.mfa is True")
        e = Engine.from_text(text, POLICY)
        assert e.enforce(Entity("alice", {"mfa": True}), "acme", "/docs/a", "read")
        assert not e.enforce(Entity("alice", {"mfa": 1}), "acme", "/docs/a", "read")
        assert not e.enforce(Entity("alice", {"mfa": False}), "acme", "/docs/a", "read")

    def test_a_failed_evaluation_fails_again_from_the_cache(self) -> None:
        """A request whose matcher raised raises the same error when asked again, served from the
        cache, and the same entity with the attribute present is still decided afresh."""
        text = MODEL.format(effect=ALLOW_AND_DENY).replace("r.act == p.act", "r.sub.mfa == True")
        e = Engine.from_text(text, POLICY)
        assert e._cache is not None
        messages = []
        for _ in range(2):
            with pytest.raises(EvaluationError) as raised:
                e.decide(Entity("alice", {}), "acme", "/docs/a", "read")
            messages.append(str(raised.value))
        assert messages[0] == messages[1] and "mfa" in messages[0]
        assert e._cache.hits == 1
        assert e.enforce(Entity("alice", {"mfa": True}), "acme", "/docs/a", "read")

    def test_cache_is_bounded(self) -> None:
        """The cache never holds more than its size."""
        e = engine(cache_size=3)
        for i in range(10):
            e.decide("alice", "acme", f"/docs/{i}", "read")
        assert e._cache is not None
        assert len(e._cache) == 3

    def test_clock_dependent_matchers_are_not_cached(self) -> None:
        """A matcher calling timeMatch gets no cache."""
        text = MODEL.format(effect=ALLOW_AND_DENY).replace(
            "r.act == p.act", 'r.act == p.act && timeMatch("_", "_")'
        )
        assert Engine.from_text(text, POLICY)._cache is None


def test_shared_across_threads() -> None:
    """Threads deciding on one Engine get the same answers as one thread."""
    e = engine()
    requests = [
        (sub, "acme", obj, act)
        for sub in ("alice", "bob", "carol", "writer")
        for obj in ("/docs/a", "/docs/secret", "/x")
        for act in ("read", "write")
    ]
    expected = [e.decide_uncached(*r) for r in requests]
    failures: list[object] = []

    def work() -> None:
        for _ in range(50):
            for values, want in zip(requests, expected, strict=True):
                if e.decide(*values) != want or e.decide_uncached(*values) != want:
                    failures.append(values)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_engine_code_never_imports_casbin() -> None:
    """No module of policy_engine.engine imports pycasbin (it is only the test oracle)."""
    folder = Path(__file__).resolve().parents[3] / "policy_engine" / "engine"
    for path in folder.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not any(a.name.split(".")[0] == "casbin" for a in node.names), path
            if isinstance(node, ast.ImportFrom):
                assert (node.module or "").split(".")[0] != "casbin", path
