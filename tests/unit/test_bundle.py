"""Loading, compiling, hashing and testing policy bundles from folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from policy_engine.bundle import (
    bundle_digest,
    compile_bundle,
    load_bundle,
    load_bundles,
    run_bundle_tests,
)
from policy_engine.errors import BundleError

ROOT = Path(__file__).resolve().parents[2]
MODEL = """[request_definition]
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
RULES = "p, reader, acme, tool:web_search, invoke\ng, alice, reader, acme\n"
TEST = """name: t
subjects: {alice: {id: alice}}
resources: {search: {kind: tool, id: web_search}}
tests:
  - {tenant: acme, subject: alice, action: invoke, resource: search, expect: allow}
  - {tenant: acme, subject: {id: bob}, action: invoke, resource: search, expect: deny}
"""


def write_bundle(root: Path, model: str = MODEL, rules: str = RULES, test: str | None = TEST) -> Path:
    folder = root / "demo"
    (folder / "tests").mkdir(parents=True)
    (folder / "model.conf").write_text(model)
    (folder / "policy.csv").write_text(rules)
    if test is not None:
        (folder / "tests" / "demo_test.yaml").write_text(test)
    return folder


class TestLoad:
    def test_reads_model_rules_and_tests(self, tmp_path: Path) -> None:
        """A folder becomes a bundle named after it, with its test files keyed by relative path."""
        bundle = load_bundle(write_bundle(tmp_path))
        assert bundle.name == "demo"
        assert bundle.policy_text == RULES
        assert list(bundle.tests) == ["tests/demo_test.yaml"]

    def test_missing_rules_file_is_named(self, tmp_path: Path) -> None:
        """A folder without policy.csv is refused naming that file."""
        folder = write_bundle(tmp_path)
        (folder / "policy.csv").unlink()
        with pytest.raises(BundleError) as caught:
            load_bundle(folder)
        assert "policy.csv" in caught.value.problems[0].file

    def test_load_bundles_finds_every_set(self, tmp_path: Path) -> None:
        """Every folder holding a model.conf under the root is a policy set."""
        shutil.copytree(ROOT / "policies" / "default", tmp_path / "default")
        write_bundle(tmp_path)
        assert [b.name for b in load_bundles(tmp_path)] == ["default", "demo"]

    def test_bad_set_name_is_refused(self, tmp_path: Path) -> None:
        """A policy set name outside the allowed alphabet is refused."""
        folder = write_bundle(tmp_path)
        with pytest.raises(BundleError, match="policy set name"):
            load_bundle(folder, name="Bad Name")


class TestCompile:
    def test_unknown_rule_type_names_file_and_line(self, tmp_path: Path) -> None:
        """A rule of a type the model does not declare is an error at its line, not silently dropped."""
        bundle = load_bundle(write_bundle(tmp_path, rules=RULES + "\nq, x, y, z, w\n"))
        with pytest.raises(BundleError) as caught:
            compile_bundle(bundle)
        problem = caught.value.problems[0]
        assert (problem.file, problem.line) == ("policy.csv", 4)

    def test_broken_model_names_model_file(self, tmp_path: Path) -> None:
        """A model without matchers is refused naming model.conf."""
        broken = MODEL.split("[matchers]")[0]
        with pytest.raises(BundleError) as caught:
            compile_bundle(load_bundle(write_bundle(tmp_path, model=broken)))
        assert caught.value.problems[0].file == "model.conf"

    def test_unbindable_request_token_is_refused(self, tmp_path: Path) -> None:
        """A model whose request tokens the service cannot fill is refused with the token named."""
        model = MODEL.replace("r = sub, dom, obj, act", "r = sub, dom, obj, act, weather").replace(
            "r.act == p.act", "r.act == p.act && r.weather == 'sunny'"
        )
        with pytest.raises(BundleError, match="weather"):
            compile_bundle(load_bundle(write_bundle(tmp_path, model=model)))


class TestDigest:
    def test_same_content_same_digest(self, tmp_path: Path) -> None:
        """The digest depends on content only, not on the folder or set name."""
        a = load_bundle(write_bundle(tmp_path / "a"))
        b = load_bundle(write_bundle(tmp_path / "b"), name="other")
        assert bundle_digest(a) == bundle_digest(b)

    def test_any_change_changes_digest(self, tmp_path: Path) -> None:
        """Changing a rule or a test file changes the digest."""
        base = bundle_digest(load_bundle(write_bundle(tmp_path / "a")))
        rules = bundle_digest(load_bundle(write_bundle(tmp_path / "b", rules=RULES + "p, x, acme, y, z\n")))
        tests = bundle_digest(load_bundle(write_bundle(tmp_path / "c", test=TEST + "\n# note\n")))
        assert len({base, rules, tests}) == 3

    def test_crlf_checkout_hashes_the_same(self, tmp_path: Path) -> None:
        """A Windows checkout (CRLF) is the same version as a Unix one."""
        unix = bundle_digest(load_bundle(write_bundle(tmp_path / "a")))
        windows = bundle_digest(
            load_bundle(write_bundle(tmp_path / "b", rules=RULES.replace("\n", "\r\n")))
        )
        assert unix == windows


class TestBundleTests:
    def test_passing_cases(self, tmp_path: Path) -> None:
        """Cases whose expectation matches the decision pass."""
        bundle = load_bundle(write_bundle(tmp_path))
        report = run_bundle_tests(bundle, compile_bundle(bundle))
        assert len(report.results) == 2
        assert report.passed

    def test_failure_names_file_line_and_reason(self, tmp_path: Path) -> None:
        """A wrong expectation is reported at its file and line with the decision's reason."""
        wrong = TEST.replace("{id: bob}, action: invoke, resource: search, expect: deny", "{id: bob}, action: invoke, resource: search, expect: allow")
        bundle = load_bundle(write_bundle(tmp_path, test=wrong))
        report = run_bundle_tests(bundle, compile_bundle(bundle))
        [problem] = report.problems()
        assert (problem.file, problem.line) == ("tests/demo_test.yaml", 6)
        assert "expected allow, got deny" in problem.message
        assert "no rule allows it" in problem.message

    def test_malformed_case_is_a_bundle_error(self, tmp_path: Path) -> None:
        """A case with an unknown key or a bad expectation is refused at its line."""
        bad = TEST.replace("expect: deny", "expect: maybe")
        bundle = load_bundle(write_bundle(tmp_path, test=bad))
        with pytest.raises(BundleError) as caught:
            run_bundle_tests(bundle, compile_bundle(bundle))
        assert caught.value.problems[0].line == 6
        assert "expect" in caught.value.problems[0].message

    def test_invalid_yaml_is_a_bundle_error(self, tmp_path: Path) -> None:
        """Unparseable YAML is refused with its file."""
        bundle = load_bundle(write_bundle(tmp_path, test="tests: [\n"))
        with pytest.raises(BundleError, match="invalid YAML"):
            run_bundle_tests(bundle, compile_bundle(bundle))


class TestExamplePolicies:
    def test_default_policy_set_passes_its_tests(self) -> None:
        """policies/default has at least 40 cases and every one passes."""
        bundle = load_bundle(ROOT / "policies" / "default")
        report = run_bundle_tests(bundle, compile_bundle(bundle))
        assert len(report.results) >= 40
        assert report.problems() == []

    def test_default_cases_cover_allow_and_deny(self) -> None:
        """The example tests exercise both outcomes and the actor rule."""
        bundle = load_bundle(ROOT / "policies" / "default")
        results = run_bundle_tests(bundle, compile_bundle(bundle)).results
        assert {r.expected for r in results} == {True, False}
        assert any(r.decision.denied_party == "actor" for r in results)

    def test_every_rule_is_exercised(self) -> None:
        """Every p rule of the example set decides at least one test case."""
        bundle = load_bundle(ROOT / "policies" / "default")
        engine = compile_bundle(bundle)
        results = run_bundle_tests(bundle, engine).results
        used = {rule.line for r in results for rule in r.decision.matched}
        p_lines = {
            n
            for n, line in enumerate(bundle.policy_text.splitlines(), start=1)
            if line.startswith("p,")
        }
        assert p_lines - used == set()
