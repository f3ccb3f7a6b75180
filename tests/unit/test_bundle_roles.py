"""roles.yaml: a bundle declares pattern roles and link conditions, decided as pycasbin does."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import casbin
import casbin.util
import pytest

from policy_engine.bundle import Bundle, compile_bundle, load_bundle
from policy_engine.bundle.digest import bundle_digest
from policy_engine.bundle.lint import lint_bundle
from policy_engine.cli.policyctl import run
from policy_engine.errors import BundleError

UPSTREAM = Path(__file__).resolve().parents[1] / "fixtures" / "upstream"
PATTERN_MODEL = (UPSTREAM / "reconstructed" / "rbac_with_pattern_model.conf").read_text(encoding="utf-8")
PATTERN_POLICY = "p, alice, book_group, GET\np, bob, pen_group, GET\ng2, /book/:id, book_group\ng2, /pen/:id, pen_group\n"
TEMPORAL_MODEL = (UPSTREAM / "reconstructed" / "rbac_with_temporal_roles_model.conf").read_text(encoding="utf-8")
# pycasbin compares ids exactly; the oracle's requests keep their case ("GET").
EXACT_IDS = "ids: {compare: exact}\n"
# Setup calls of the harvested upstream tests, as roles.yaml says them.
_BUILTINS = {f"casbin.util.{k}": v for k, v in {
    "key_match": "keyMatch", "key_match2": "keyMatch2", "key_match2_func": "keyMatch2",
    "key_match3": "keyMatch3", "glob_match": "globMatch", "time_match_func": "timeMatch",
}.items()}  # fmt: skip


def _folder(tmp_path: Path, model: str, policy: str, roles: str | None) -> Path:
    folder = tmp_path / "demo"
    folder.mkdir()
    (folder / "model.conf").write_text(model, encoding="utf-8")
    (folder / "policy.csv").write_text(policy, encoding="utf-8")
    (folder / "schema.yaml").write_text(EXACT_IDS, encoding="utf-8")
    if roles is not None:
        (folder / "roles.yaml").write_text(roles, encoding="utf-8")
    return folder


def _problems(model: str, policy: str, roles: str) -> list[str]:
    with pytest.raises(BundleError) as caught:
        compile_bundle(Bundle("demo", model, policy, roles_text=roles))
    return [str(p) for p in caught.value.problems]


def test_declared_pattern_roles_decide_as_pycasbin_with_the_matching_function(tmp_path: Path) -> None:
    """`g2: {names: keyMatch2}` in roles.yaml decides like pycasbin's
    add_named_matching_func("g2", keyMatch2), on a bundle read from disk."""
    engine = compile_bundle(load_bundle(_folder(tmp_path, PATTERN_MODEL, PATTERN_POLICY, "g2:\n  names: keyMatch2\n")))
    enforcer = casbin.Enforcer(str(UPSTREAM / "reconstructed" / "rbac_with_pattern_model.conf"))
    for line in PATTERN_POLICY.splitlines():
        ptype, *values = [v.strip() for v in line.split(",")]
        (enforcer.add_named_policy if ptype == "p" else enforcer.add_named_grouping_policy)(ptype, values)
    enforcer.add_named_matching_func("g2", casbin.util.key_match2)
    for sub in ("alice", "bob"):
        for obj in ("/book/1", "/pen/1", "/book/1/2", "*", ""):
            assert engine.enforce(sub, obj, "GET") == enforcer.enforce(sub, obj, "GET"), (sub, obj)
    assert engine.enforce("alice", "/book/7", "GET") and not engine.enforce("bob", "/book/7", "GET")


def test_condition_for_every_link_holds_only_inside_its_window() -> None:
    """`g: {condition: timeMatch}` checks every link of a conditional definition with its params."""
    policy = ("p, past_admin, d1, read\np, open_admin, d2, read\n"
              "g, alice, past_admin, 0001-01-01 00:00:00, 0001-01-02 00:00:00\n"
              "g, alice, open_admin, _, _\n")  # fmt: skip
    engine = compile_bundle(Bundle("demo", TEMPORAL_MODEL, policy, roles_text="g:\n  condition: timeMatch\n"))
    assert not engine.enforce("alice", "d1", "read")
    assert engine.enforce("alice", "d2", "read")


def _roles_yaml(setups: list[dict[str, Any]]) -> str | None:
    """roles.yaml equivalent to upstream setup calls, or None when one is not declarable."""
    declared: dict[str, dict[str, Any]] = {}
    for step in setups:
        args = step["args"]
        function = _BUILTINS.get(args[-1].get("function", "")) if isinstance(args[-1], dict) else None
        if function is None:
            return None
        entry = declared.setdefault(args[0], {})
        if step["setup"] == "add_named_matching_func":
            entry["names"] = function
        elif step["setup"] == "add_named_domain_matching_func":
            entry["domains"] = function
        elif step["setup"] == "add_named_link_condition_func":
            entry.setdefault("links", []).append({"user": args[1], "role": args[2], "condition": function})
        elif step["setup"] == "add_named_domain_link_condition_func":
            entry.setdefault("links", []).append(
                {"user": args[1], "role": args[2], "domain": args[3], "condition": function}
            )
        else:
            return None
    return json.dumps(declared)  # JSON is YAML


def test_upstream_examples_load_through_a_bundle_and_decide_as_upstream_asserts() -> None:
    """Every harvested upstream case whose setup a bundle can declare passes through
    compile_bundle with roles.yaml, and decides every assertion as upstream asserts."""
    cases = json.loads((UPSTREAM / "assertions.json").read_text(encoding="utf-8"))
    ran = 0
    for case in cases:
        model = UPSTREAM / "reconstructed" / case["model"]
        policy = UPSTREAM / "reconstructed" / case["policy"] if case["policy"] else None
        setups: list[dict[str, Any]] = []
        for step in case["steps"]:
            if "setup" in step:
                setups.append(step)
                continue
            roles = _roles_yaml(setups)
            if roles is None:
                break
            bundle = Bundle("demo", model.read_text(encoding="utf-8"),
                            policy.read_text(encoding="utf-8") if policy else "", roles_text=roles,
                            schema_text=EXACT_IDS)  # fmt: skip
            try:
                engine = compile_bundle(bundle)
            except BundleError as exc:  # a model the bundle layer refuses by design (check_bindable)
                assert "model.conf" in str(exc), exc
                break
            assert engine.enforce(*step["enforce"]) is step["expect"], (case["test"], step)
            ran += 1
    assert ran >= 100


@pytest.mark.parametrize(
    ("roles", "expected"),
    [
        ("g9:\n  names: keyMatch2\n", "roles.yaml:1: unknown role definition 'g9' (model.conf has g, g2)"),
        ("g2:\n  names: keyMatch9\n", "roles.yaml:2: g2.names: unknown function 'keyMatch9'"),
        ("g2:\n  names: keyMatch2\n  default: x\n", "roles.yaml:3: g2: unknown key 'default'"),
        ("g2:\n  domains: keyMatch\n", "roles.yaml:2: g2.domains: g2 = _, _ has no domain"),
        ("g2:\n  condition: timeMatch\n", "roles.yaml:2: g2.condition: g2 = _, _ is not conditional"),
        ("g2: [1, 2]\n", "roles.yaml:1: g2: expected keys"),
        ("g2:\n  names: [keyMatch2\n", "roles.yaml:3: not valid YAML"),
        ("g2:\n  names: __import__('os')\n", "roles.yaml:2: g2.names: unknown function"),
    ],
)
def test_bad_declarations_name_roles_yaml_and_the_line(roles: str, expected: str) -> None:
    """Unknown definitions, functions and keys, and misplaced keys are refused at file:line."""
    found = _problems(PATTERN_MODEL, PATTERN_POLICY, roles)
    assert any(p.startswith(expected) for p in found), found


def test_link_conditions_are_checked_too() -> None:
    """A link entry without a condition or with an unknown key is refused with its line."""
    roles = "g:\n  links:\n    - {user: alice, role: admin}\n    - {user: a, role: b, condition: timeMatch, when: x}\n"
    found = _problems(TEMPORAL_MODEL, "p, admin, d, read\n", roles)
    assert "roles.yaml:3: g.links[3]: missing condition" in found
    assert any(p.startswith("roles.yaml:4: g.links[4]: unknown key 'when'") for p in found), found


@pytest.mark.parametrize(
    ("function", "link", "message"),
    [
        ("keyMatch", "g2, *, book_group", "g2 name pattern '*': matches every name under keyMatch"),
        ("keyMatch2", "g2, *, book_group", "matches every name under keyMatch2"),
        ("regexMatch", "g2, .*, book_group", "matches every name under regexMatch"),
        ("globMatch", "g2, pen_group, **", "matches every name under globMatch"),
        ("regexMatch", "g2, ^/book/[0-9]+, book_group", "regexMatch pattern is not anchored with $"),
    ],
)
def test_dangerous_patterns_are_lint_problems_with_the_policy_line(function: str, link: str, message: str) -> None:
    """A pattern role matching every name, or an unanchored regex, is a lint problem at
    policy.csv:line; anchored, specific patterns are not."""
    policy = PATTERN_POLICY + link + "\n"
    roles = f"g2:\n  names: {function}\n"
    bundle = Bundle("demo", PATTERN_MODEL, policy, roles_text=roles)
    found = [str(p) for p in lint_bundle(bundle, compile_bundle(bundle))]
    line = len(policy.splitlines())
    assert any(p.startswith(f"policy.csv:{line}:") and message in p for p in found), found


@pytest.mark.parametrize(
    ("function", "policy"),
    [
        ("keyMatch2", PATTERN_POLICY),
        ("regexMatch", "p, alice, book_group, GET\ng2, ^/book/[0-9]+$, ^book_group$\n"),
    ],
)
def test_specific_anchored_patterns_are_clean(function: str, policy: str) -> None:
    """Specific keyMatch2 patterns and regexes anchored with ^...$ raise no pattern problem."""
    bundle = Bundle("demo", PATTERN_MODEL, policy, roles_text=f"g2:\n  names: {function}\n")
    assert [str(p) for p in lint_bundle(bundle, compile_bundle(bundle)) if "pattern" in str(p)] == []


def test_roles_yaml_is_part_of_the_digest_and_validate_refuses_it_with_file_line(tmp_path: Path) -> None:
    """Adding roles.yaml changes the bundle's sha256; `policyctl validate` prints its problems."""
    plain = Bundle("demo", PATTERN_MODEL, PATTERN_POLICY)
    declared = Bundle("demo", PATTERN_MODEL, PATTERN_POLICY, roles_text="g2:\n  names: keyMatch2\n")
    assert bundle_digest(plain) != bundle_digest(declared)
    assert bundle_digest(Bundle("demo", PATTERN_MODEL, PATTERN_POLICY, roles_text="")) == bundle_digest(plain)
    folder = _folder(tmp_path, PATTERN_MODEL, PATTERN_POLICY, "g2:\n  names: keyMatch2\n  extra: 1\n")
    out, err = io.StringIO(), io.StringIO()
    assert run(["validate", str(folder)], out, err) != 0
    assert "roles.yaml:3: g2: unknown key 'extra'" in err.getvalue()
