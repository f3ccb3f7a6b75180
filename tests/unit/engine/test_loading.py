"""Loading model.conf and policy text: pycasbin's reading, and named errors where it is silent."""

from __future__ import annotations

import pytest

from policy_engine.engine import Engine
from policy_engine.engine.model import RoleKind, parse_model
from policy_engine.errors import EvaluationError, ModelError, PolicyLoadError

BASIC = """
[request_definition]
r = sub, obj, act
[policy_definition]
p = sub, obj, act
[role_definition]
g = _, _
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = g(r.sub, p.sub) && r.obj == p.obj && r.act == p.act
"""


class TestModel:
    def test_reads_tokens_and_escapes_matcher(self) -> None:
        """Tokens get their type prefix; the matcher gets `p_`/`r_` names and loses comments."""
        model = parse_model(BASIC.replace("r.act == p.act", "r.act == p.act # trailing"))
        assert model.requests["r"] == ("r_sub", "r_obj", "r_act")
        assert model.matchers["m"] == "g(r_sub, p_sub) && r_obj == p_obj && r_act == p_act"
        assert model.roles["g"].kind is RoleKind.PLAIN

    def test_continuation_lines_join(self) -> None:
        """A trailing backslash continues the value on the next line."""
        text = BASIC.replace("m = g(r.sub, p.sub) && ", "m = g(r.sub, p.sub) \\\n  && ")
        assert parse_model(text).matchers["m"].startswith("g(r_sub, p_sub) && r_obj")

    def test_numbered_keys_stop_at_the_first_gap(self) -> None:
        """`r3` without `r2` is not read, as in pycasbin."""
        model = parse_model(BASIC.replace("r = sub, obj, act", "r = sub, obj, act\nr3 = a"))
        assert list(model.requests) == ["r"]

    @pytest.mark.parametrize("section", ["request_definition", "policy_definition", "matchers"])
    def test_missing_section_is_a_model_error(self, section: str) -> None:
        """A model without requests, rules or matcher cannot decide anything."""
        text = BASIC.replace(f"[{section}]", "[elsewhere]")
        with pytest.raises(ModelError):
            parse_model(text)

    def test_unsupported_effect_is_a_model_error(self) -> None:
        """Only pycasbin's five effect texts are accepted."""
        with pytest.raises(ModelError, match="unsupported"):
            parse_model(BASIC.replace("some(where (p.eft == allow))", "some(where (p.eft==allow))"))

    def test_line_without_equals_is_a_model_error(self) -> None:
        """A definition line must be `name = value`."""
        with pytest.raises(ModelError):
            parse_model(BASIC + "\nnonsense\n")


def test_a_repeated_section_or_key_is_read_as_pycasbin_reads_it() -> None:
    """A second [matchers] section, and a key given twice, replace the earlier text (the last
    wins, as in pycasbin's config reader)."""
    text = BASIC + "\n[matchers]\nm = r.sub == p.sub\nm = r.sub == p.sub && r.act == p.act\n"
    engine = Engine.from_text(text, "p, alice, data, read\n")
    assert engine.model.matchers["m"] == "r_sub == p_sub && r_act == p_act"
    assert engine.enforce("alice", "other", "read")


class TestPolicy:
    def test_comments_blank_lines_and_brackets(self) -> None:
        """`#` lines and blank lines are skipped; commas inside brackets do not split."""
        policy = "# header\n\np, alice, (a, b), read\n  p , bob , [x,y] , write  \ng, alice, admin\n"
        engine = Engine.from_text(BASIC, policy)
        assert engine.rule_count == 3
        assert engine.role_names == frozenset({"admin"})
        decision = engine.decide("bob", "[x,y]", "write")
        assert decision.allowed
        assert decision.matched[0].line == 4
        assert decision.matched[0].values == ("bob", "[x,y]", "write")

    @pytest.mark.parametrize(
        ("policy", "line"),
        [
            ("p, alice, data, read\nq, alice, data, read", 2),
            ("g, alice", 1),
            ("p, alice, data), read", 1),
            ("(p, alice, data, read", 1),
        ],
    )
    def test_bad_rule_lines_name_their_line(self, policy: str, line: int) -> None:
        """Unknown rule types, short g rules and bad brackets are PolicyLoadError with the line."""
        with pytest.raises(PolicyLoadError) as caught:
            Engine.from_text(BASIC, policy)
        assert caught.value.line == line

    def test_rules_of_the_wrong_size_load_and_fail_only_when_reached(self) -> None:
        """A p rule with fewer or more fields loads (as in pycasbin); a scan reaching it fails
        naming its line, one that stops before it decides."""
        model = BASIC.replace("p = sub, obj, act", "p = priority, sub, obj, act, eft").replace(
            "some(where (p.eft == allow))", "priority(p.eft) || deny"
        )
        policy = "p, 1, alice, data, read, allow\np, 2, bob, data\np, 3, eve, data, read, deny, x\n"
        engine = Engine.from_text(model, policy)
        assert engine.decide("alice", "data", "read").allowed
        with pytest.raises(EvaluationError, match="invalid policy size.*line 2"):
            engine.decide("bob", "data", "read")
        assert [rule.line for rule in engine.misfits] == [2, 3]

    def test_priority_orders_rules_and_keeps_lines(self) -> None:
        """Rules are decided in priority order; the matched rule reports its own line."""
        model = BASIC.replace("p = sub, obj, act", "p = priority, sub, obj, act, eft").replace(
            "some(where (p.eft == allow))", "priority(p.eft) || deny"
        )
        policy = "p, 10, alice, data, read, allow\np, 2, alice, data, read, deny\n"
        decision = Engine.from_text(model, policy).decide("alice", "data", "read")
        assert not decision.allowed
        assert decision.matched[0].line == 2

    def test_mixed_priorities_are_a_load_error(self) -> None:
        """Digit and text priorities cannot be ordered together (pycasbin fails to load too)."""
        model = BASIC.replace("p = sub, obj, act", "p = priority, sub, obj, act")
        with pytest.raises(PolicyLoadError):
            Engine.from_text(model, "p, 1, a, b, c\np, x, a, b, c\n")
