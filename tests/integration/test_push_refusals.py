"""Broken and dangerous bundles are refused alike by validate, test and push, and nothing is written."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from policy_engine.cli import policyctl
from policy_engine.client import SyncClient
from policy_engine.client.admin import AdminClient, BundleFiles
from policy_engine.testing import ServerHandle, running_server

ROOT = Path(__file__).resolve().parents[2]
SET = "demo"
MODEL = """[request_definition]
r = sub, dom, obj, act

[policy_definition]
p = sub, dom, obj, act, cond, eft

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = g(r.sub, p.sub, r.dom) && r.dom == p.dom && regexMatch((r.obj), p.obj) && r.act == p.act && eval(p.cond)
"""
MATCHER_LINE = 14
RULES = """p, reader, acme, ^tool:search$, invoke, True, allow
p, reader, acme, ^tool:delete$, invoke, r.sub.mfa == True, allow
g, sam, reader, acme
"""
TEST = """name: demo
subjects:
  sam: {id: sam, attr: {mfa: true}}
  sam_no_mfa: {id: sam, attr: {mfa: false}}
resources:
  search: {kind: tool, id: search}
  delete: {kind: tool, id: delete}
  search_and_delete: {kind: tool, id: search_and_delete}
tests:
  - {tenant: acme, subject: sam, action: invoke, resource: search, expect: allow}
  - {tenant: acme, subject: sam, action: invoke, resource: search_and_delete, expect: deny}
  - {tenant: acme, subject: sam_no_mfa, action: invoke, resource: delete, expect: deny}
"""
SCHEMA = "subject:\n  mfa: {type: bool}\n"
Files = dict[str, str]


def good() -> Files:
    return {"model.conf": MODEL, "policy.csv": RULES, "tests/demo_test.yaml": TEST, "schema.yaml": SCHEMA}


def with_matcher(matcher: str) -> Callable[[Files], None]:
    def change(files: Files) -> None:
        files["model.conf"] = re.sub(r"(?m)^m = .*$", lambda _: f"m = {matcher}", files["model.conf"])

    return change


def with_rule(line: int, rule: str) -> Callable[[Files], None]:
    def change(files: Files) -> None:
        lines = files["policy.csv"].splitlines()
        lines[line - 1] = rule
        files["policy.csv"] = "\n".join(lines) + "\n"

    return change


def replace(file: str, old: str, new: str) -> Callable[[Files], None]:
    def change(files: Files) -> None:
        assert old in files[file]
        files[file] = files[file].replace(old, new)

    return change


def append(file: str, text: str) -> Callable[[Files], None]:
    def change(files: Files) -> None:
        files[file] += text

    return change


KEYMATCH2 = "g(r.sub, p.sub, r.dom) && r.dom == p.dom && keyMatch2((r.obj), p.obj) && r.act == p.act && eval(p.cond)"
ANCHORED = f"model.conf:{MATCHER_LINE}: matcher m"

# (id, change, where, reason): every refusal names the file, the line and why.
CASES = [
    ("dangling-equals", with_matcher("r.sub =="), ANCHORED, "does not parse"),
    ("dangling-and", with_matcher("g(r.sub, p.sub, r.dom) &&"), ANCHORED, "does not parse"),
    ("unbalanced-paren", with_matcher("(g(r.sub, p.sub, r.dom) && r.act == p.act"), ANCHORED, "does not parse"),
    ("undefined-function", with_matcher("g(r.sub, p.sub, r.dom) && fooMatch(r.obj, p.obj)"), ANCHORED, "undefined function fooMatch()"),
    ("undefined-name", with_matcher("g(r.sub, p.sub, r.dom) && r.obj == p.object"), ANCHORED, "undefined name p.object"),
    ("function-as-value", with_matcher("g(r.sub, p.sub, r.dom) && [regexMatch][0](r.obj, p.obj)"), ANCHORED, "computed function"),
    ("request-chooses-pattern", with_matcher("g(r.sub, p.sub, r.dom) && regexMatch(p.obj, r.obj) && eval(p.cond)"), ANCHORED, "a request must not choose the pattern"),
    ("unanchored-regex-in-parens", with_rule(1, "p, reader, acme, tool:search, invoke, True, allow"), "policy.csv:1:", "must be anchored"),
    ("unanchored-regex-nested", lambda f: (with_matcher("g(r.sub, p.sub, r.dom) && !(!regexMatch((r.obj), (p.obj))) && eval(p.cond)")(f), with_rule(1, "p, reader, acme, ^tool:search, invoke, True, allow")(f)), "policy.csv:1:", "must be anchored"),
    ("catastrophic-regex", with_rule(1, "p, reader, acme, ^tool:(a|a)*$, invoke, True, allow"), "policy.csv:1:", "backtrack"),
    ("re2-refuses-lookahead", with_rule(1, "p, reader, acme, ^(?=tool)tool:search$, invoke, True, allow"), "policy.csv:1:", "RE2 cannot run it"),
    ("dot-in-keymatch2", lambda f: (with_matcher(KEYMATCH2)(f), replace("policy.csv", "^tool:search$", "tool:report.pdf")(f), replace("policy.csv", "^tool:delete$", "tool:delete")(f)), "policy.csv:1:", "'.' is a regex wildcard"),
    ("eval-or-true", with_rule(2, "p, reader, acme, ^tool:delete$, invoke, r.sub.mfa == True or True, allow"), "policy.csv:2:", "not a plain condition"),
    ("eval-tautology", with_rule(2, "p, reader, acme, ^tool:delete$, invoke, r.sub.mfa == True || r.sub.mfa != True, allow"), "policy.csv:2:", "always true"),
    ("eval-call", with_rule(2, "p, reader, acme, ^tool:delete$, invoke, __import__('os').getpid() > 0, allow"), "policy.csv:2:", "not a plain condition"),
    ("eft-allowed", with_rule(1, "p, reader, acme, ^tool:search$, invoke, True, allowed"), "policy.csv:1:", "must be allow or deny"),
    ("unknown-effect", replace("model.conf", "e = some(where (p.eft == allow)) && !some(where (p.eft == deny))", "e = some(where (p.eft == allowed))"), "model.conf:11:", "unsupported policy effect"),
    ("duplicate-matchers-section", append("model.conf", "\n[matchers]\nm = r.sub == p.sub\n"), "model.conf:16:", "defined twice"),
    ("duplicate-matcher-key", append("model.conf", "m = r.sub == p.sub\n"), "model.conf:15:", "defined twice"),
    ("schema-unknown-type", replace("schema.yaml", "{type: bool}", "{type: boolean}"), "schema.yaml:2:", "boolean"),
    ("schema-unknown-key", replace("schema.yaml", "{type: bool}", "{type: bool, default: false}"), "schema.yaml:2:", "unknown key 'default'"),
    ("test-unknown-fixture", replace("tests/demo_test.yaml", "subject: sam_no_mfa,", "subject: samm,"), "tests/demo_test.yaml:12:", "'samm' is not a fixture"),
    ("no-rules", replace("policy.csv", RULES, "g, sam, reader, acme\n"), "policy.csv:", "no policy rules"),
]


@pytest.fixture(scope="module")
def server() -> Iterator[ServerHandle]:
    with running_server(ROOT / "policies" / "default") as handle:
        with AdminClient(handle.target, token=handle.admin_token) as admin:
            admin.push(SET, _files(good()), message="v1", author="ann", activate=True)
        yield handle


def _files(files: Files) -> BundleFiles:
    tests = {k: v for k, v in files.items() if k.startswith("tests/")}
    return BundleFiles(files["model.conf"], files["policy.csv"], tests, files.get("schema.yaml", ""))


def _write(folder: Path, files: Files) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def _local(command: str, folder: Path) -> tuple[int, list[str]]:
    out, err = io.StringIO(), io.StringIO()
    code = policyctl.run([command, str(folder)], out, err)
    return code, [line.removeprefix("ERROR ") for line in err.getvalue().splitlines() if line.startswith("ERROR ")]


@pytest.mark.parametrize(("change", "where", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_refused_everywhere_and_nothing_written(server: ServerHandle, tmp_path: Path, change, where: str, reason: str) -> None:  # type: ignore[no-untyped-def]
    """A broken or dangerous bundle is refused by validate, test and push --activate with file:line and reason; no version is added and v1 stays active."""
    files = good()
    change(files)
    folder = _write(tmp_path / SET, files)

    validate_code, validate_problems = _local("validate", folder)
    test_code, test_problems = _local("test", folder)
    with AdminClient(server.target, token=server.admin_token) as admin:
        before = admin.versions(SET)
        with pytest.raises(grpc.RpcError) as caught:
            admin.push(SET, _files(files), message="broken", author="ann", activate=True)
        after = admin.versions(SET)

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    pushed_problems = caught.value.details().splitlines()[1:]
    assert any(p.startswith(where) and reason in p for p in pushed_problems), pushed_problems
    assert validate_code == policyctl.EXIT_REFUSED
    assert sorted(validate_problems) == sorted(pushed_problems)
    assert test_code == policyctl.EXIT_REFUSED
    assert sorted(test_problems) == sorted(pushed_problems)
    assert [(v.number, v.active) for v in after] == [(v.number, v.active) for v in before] == [(1, True)]


def test_good_bundle_passes_everywhere(server: ServerHandle, tmp_path: Path) -> None:
    """The same bundle without the breakage validates, tests and pushes (so the refusals above are about the breakage)."""
    folder = _write(tmp_path / SET, good())
    assert _local("validate", folder) == (policyctl.EXIT_OK, [])
    assert _local("test", folder) == (policyctl.EXIT_OK, [])
    with AdminClient(server.target, token=server.admin_token) as admin:
        outcome = admin.push(SET, _files(good()), message="same", author="ann", activate=True)
    assert outcome.created is False and outcome.version.number == 1


def test_unanchored_pattern_would_have_allowed_the_longer_tool(server: ServerHandle) -> None:
    """The refused unanchored pattern is a real hole: with the anchored v1 live, tool:search_and_delete is denied."""
    with SyncClient(server.target) as client:
        allowed = client.check(policy_set=SET, tenant="acme", subject="sam", action="invoke", resource="tool:search", min_version=1)
        longer = client.check(policy_set=SET, tenant="acme", subject="sam", action="invoke", resource="tool:search_and_delete", min_version=1)
    assert allowed.allowed and not longer.allowed


def test_big_push_is_stored_and_the_server_keeps_answering() -> None:
    """A push past 1 MiB (checked in the worker, the database connections let go after it) is stored and served."""
    rules = "".join(f"p, reader_of_everything_{i}, acme, ^tool:search$, invoke, True, allow\n" for i in range(30_000))
    files = good()
    files["policy.csv"] = RULES + rules
    assert len(files["policy.csv"]) > 1 << 20
    with running_server(ROOT / "policies" / "default") as server, AdminClient(server.target, token=server.admin_token, timeout=300) as admin:
        outcome = admin.push(SET, _files(files), message="big", author="ann", activate=True)
        assert outcome.created and outcome.version.rule_count == 30_003
        assert [v.number for v in admin.versions(SET) if v.active] == [outcome.version.number]
        with SyncClient(server.target, timeout=120) as client:
            result = client.check(policy_set=SET, tenant="acme", subject="sam", action="invoke", resource="tool:search", min_version=outcome.version.number)
    assert result.allowed
