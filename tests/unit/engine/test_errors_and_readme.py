"""Evaluation errors name the rule and the matcher; the README's library example runs."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from policy_engine.engine import Engine, Entity
from policy_engine.errors import EvaluationError

ROOT = Path(__file__).resolve().parents[3]
MODEL = ROOT / "policies" / "default" / "model.conf"
POLICY = ROOT / "policies" / "default" / "policy.csv"


def test_missing_attribute_names_the_rule_file_line_and_matcher() -> None:
    """A missing attribute is an EvaluationError naming policy.csv:line, the rule and `m = ...`."""
    engine = Engine.from_text(
        MODEL.read_text(encoding="utf-8"), POLICY.read_text(encoding="utf-8"), policy_file="policy.csv"
    )
    for cached in (False, True):
        with pytest.raises(EvaluationError) as caught:
            if cached:
                engine.decide("alice", "acme", "tool:web_search", "invoke")
            else:
                engine.decide_uncached("alice", "acme", "tool:web_search", "invoke")
        message = str(caught.value)
        line = re.search(r"policy\.csv:(\d+)", message)
        assert line is not None, message
        assert "r.sub.mfa" in POLICY.read_text(encoding="utf-8").splitlines()[int(line.group(1)) - 1]
        assert "Attribute 'mfa' does not exist" in message
        assert "in expression ''" not in message
        assert "m = g(r.sub, p.sub, r.dom)" in message


def test_without_a_file_name_the_rule_is_named_by_type_values_and_line() -> None:
    """Built from text with no file name, the error shows the rule's ptype, values and line."""
    model = MODEL.read_text(encoding="utf-8")
    engine = Engine.from_text(model, "p, viewer, *, tool:x, invoke, r.sub.level > 2, allow\n"
                              "g, bob, viewer, acme\n")  # fmt: skip
    with pytest.raises(EvaluationError, match=r"rule `p, viewer, \*, tool:x, invoke, r.sub.level > 2, allow` \(line 1\)"):
        engine.enforce("bob", "acme", "tool:x", "invoke")


def test_a_wrong_result_type_names_its_rule() -> None:
    """A matcher giving a string (not bool/number) fails naming the rule it was evaluated on."""
    model = MODEL.read_text(encoding="utf-8")
    engine = Engine.from_text(model, "p, viewer, *, tool:x, invoke, 'yes', allow\ng, bob, viewer, acme\n")
    with pytest.raises(EvaluationError, match="matcher result should be bool.*line 1"):
        engine.enforce("bob", "acme", "tool:x", "invoke")


def test_readme_library_example_runs() -> None:
    """The README's `Engine` example runs as written (from the repository root)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## The engine as a library", 1)[1]
    code = section.split("```python", 1)[1].split("```", 1)[0]
    here = os.getcwd()
    os.chdir(ROOT)
    try:
        exec(compile(code, "README.md", "exec"), {"Entity": Entity})  # noqa: S102
    finally:
        os.chdir(here)
