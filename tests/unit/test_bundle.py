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


class TestChecks:
    """inspect_bundle/check_bundle: the one set of checks validate, test and push share."""

    @staticmethod
    def refusals(tmp_path: Path, **files: str) -> list[str]:
        from policy_engine.bundle import inspect_bundle

        folder = write_bundle(tmp_path, **{k: v for k, v in files.items() if k in ("model", "rules", "test")})
        if "schema" in files:
            (folder / "schema.yaml").write_text(files["schema"])
        return [str(p) for p in inspect_bundle(load_bundle(folder)).refusals]

    def test_clean_bundle_has_no_refusals(self, tmp_path: Path) -> None:
        """The example bundle passes every check, tests included."""
        assert self.refusals(tmp_path) == []

    def test_duplicate_section_and_key_are_refused_at_their_lines(self, tmp_path: Path) -> None:
        """A second [matchers] and a second m = are refused with the line of the repeat and of the first."""
        model = MODEL + "[matchers]\nm = r.sub == p.sub\n"
        assert self.refusals(tmp_path, model=model)[:2] == [
            "model.conf:11: section [matchers] is defined twice (first at line 9)",
            "model.conf:12: m is defined twice in [matchers] (first at line 10)",
        ]

    def test_duplicate_key_in_another_section_is_refused(self, tmp_path: Path) -> None:
        """A key repeated within [request_definition] is refused too."""
        model = MODEL.replace("r = sub, dom, obj, act\n", "r = sub, dom, obj, act\nr = sub, obj, act\n")
        assert "model.conf:3: r is defined twice in [request_definition] (first at line 2)" in self.refusals(tmp_path, model=model)

    def test_matcher_of_another_family_is_compiled_against_its_own_types(self, tmp_path: Path) -> None:
        """m2 reads r2/p2; a name its types do not define, or a family the model lacks, is refused."""
        model = MODEL.replace("[matchers]\n", "[matchers]\nm2 = r2.sub == p.sub\n")
        assert self.refusals(tmp_path, model=model) == ["model.conf:10: matcher m2: reads r2, which [request_definition] does not define"]
        model = MODEL + "m2 = r.sub == p.owner\n"
        assert self.refusals(tmp_path / "2", model=model) == ["model.conf:11: matcher m2: reads undefined name p.owner"]

    def test_eval_must_name_a_field_exactly(self, tmp_path: Path) -> None:
        """eval( p.act ) with spaces never resolves in the engine: refused at the matcher's line."""
        model = MODEL.replace("r.act == p.act", "r.act == p.act && eval( p.act )")
        assert any("must name one field of p exactly" in p and p.startswith("model.conf:10:") for p in self.refusals(tmp_path, model=model))

    def test_undefined_function_and_effect_are_refused_with_lines(self, tmp_path: Path) -> None:
        """An undefined function in the matcher and an unknown effect name model.conf and the line."""
        model = MODEL.replace("r.act == p.act", "r.act == p.act && isAdmin(r.sub)")
        assert self.refusals(tmp_path, model=model) == ["model.conf:10: matcher m: calls undefined function isAdmin()"]
        model = MODEL.replace("p.eft == allow", "p.eft == allowed")
        assert self.refusals(tmp_path / "2", model=model) == ["model.conf:8: unsupported policy effect: 'some(where (p_eft == allowed))'"]

    @pytest.mark.parametrize(
        ("schema", "expected"),
        [
            ("subject:\n  mfa: {type: boolean}\n", "schema.yaml:2: subject.mfa: type 'boolean' must be one of"),
            ("subject:\n  mfa: {type: bool, default: false}\n", "schema.yaml:2: subject.mfa: unknown key 'default'"),
            ("subject:\n  mfa: bool\n  mfa: int\n", "schema.yaml:3: subject: 'mfa' is defined twice"),
            ("subjects:\n  mfa: bool\n", "schema.yaml:1: 'subjects': expected one of"),
            ("subject:\n  mfa: {type: bool, required: maybe}\n", "schema.yaml:2: subject.mfa: required must be true or false"),
            ("subject:\n  mfa: {type: int, kinds: data}\n", "schema.yaml:2: subject.mfa: kinds must be a list"),
        ],
    )
    def test_schema_is_read_strictly_with_lines(self, tmp_path: Path, schema: str, expected: str) -> None:
        """Unknown types, unknown keys and repeated names in schema.yaml are refused at their line."""
        found = self.refusals(tmp_path, schema=schema)
        assert any(p.startswith(expected) for p in found), found

    @pytest.mark.parametrize(
        ("old", "new", "what"),
        [
            ("subject: alice,", "subject: alicee,", "subject 'alicee'"),
            ("resource: search, expect: allow", "resource: serch, expect: allow", "resource 'serch'"),
            ("subject: alice,", "subject: alice, actor: helper,", "actor 'helper'"),
        ],
    )
    def test_unknown_fixture_is_an_error_at_its_line(self, tmp_path: Path, old: str, new: str, what: str) -> None:
        """A test naming a fixture the file does not define is refused at its line, not taken as an id."""
        found = self.refusals(tmp_path, test=TEST.replace(old, new, 1))
        assert len(found) == 1
        assert found[0].startswith(f"tests/demo_test.yaml:5: {what} is not a fixture of this file")

    def test_misspelt_fixture_suggests_the_close_name(self, tmp_path: Path) -> None:
        """The refusal of a misspelt fixture names the fixture it probably meant."""
        [found] = self.refusals(tmp_path, test=TEST.replace("subject: alice,", "subject: alicee,", 1))
        assert "did you mean 'alice'?" in found

    def test_tests_do_not_run_on_a_refused_bundle(self, tmp_path: Path) -> None:
        """When the lint refuses the bundle, its tests are not run (they could run the refused pattern)."""
        from policy_engine.bundle import inspect_bundle

        folder = write_bundle(tmp_path, model=MODEL.replace("r.act == p.act", "r.act == p.act && fooMatch(r.obj)"))
        checked = inspect_bundle(load_bundle(folder))
        assert checked.report is None and checked.problems

    def test_unknown_fixture_key_is_an_error(self, tmp_path: Path) -> None:
        """A fixture with `attrs:` for `attr:` is refused instead of testing without attributes."""
        found = self.refusals(tmp_path, test=TEST.replace("alice: {id: alice}", "alice: {id: alice, attrs: {mfa: true}}"))
        assert found == ["tests/demo_test.yaml:5: subject 'alice': unknown keys ['attrs'] (allowed: ['attr', 'id'])"]

    def test_key_given_twice_in_a_case_is_an_error(self, tmp_path: Path) -> None:
        """A case with two `expect:` is refused at its line instead of keeping the last."""
        found = self.refusals(tmp_path, test=TEST.replace("expect: allow}", "expect: allow, expect: deny}"))
        assert len(found) == 1 and found[0].startswith("tests/demo_test.yaml:5: invalid YAML") and "given twice" in found[0]
