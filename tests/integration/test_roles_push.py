"""roles.yaml travels end to end: push, store, serve, show, diff and export through a real server."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import casbin
import grpc
import casbin.util
import pytest

from policy_engine.bundle import bundle_digest, load_bundle
from policy_engine.cli import policyctl
from policy_engine.client import SyncClient
from policy_engine.client.admin import AdminClient, BundleFiles
from policy_engine.testing import ServerHandle, running_server

ROOT = Path(__file__).resolve().parents[2]

# Tools are grouped by pattern (g2, keyMatch2 over the tool id) and users join roles in every
# tenant through a "*" domain link (g, keyMatch over the domain).
MODEL = """\
[request_definition]
r = sub, dom, obj, act

[policy_definition]
p = sub, dom, obj, act

[role_definition]
g = _, _, _
g2 = _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, p.sub, r.dom) && r.dom == p.dom && g2(r.obj, p.obj) && r.act == p.act
"""
POLICY = """\
p, developer, acme, github_tools, invoke
p, developer, globex, github_tools, invoke
p, analyst, acme, search_tools, invoke
g, alice, developer, *
g, bob, analyst, acme
g2, tool:mcp/github/*, github_tools
g2, tool:web_search, search_tools
"""
ROLES = "g2:\n  names: keyMatch2\ng:\n  domains: keyMatch\n"
SCHEMA = "ids: {compare: exact}\n"  # pycasbin compares ids exactly
REQUESTS = [
    (subject, tenant, resource)
    for subject in ("alice", "bob", "carol")
    for tenant in ("acme", "globex", "initech")
    for resource in (
        "tool:mcp/github/create_issue",
        "tool:mcp/github/repos/list",
        "tool:mcp/gitlab/create_issue",
        "tool:mcp/github",
        "tool:web_search",
        "tool:mcp/github_enterprise/x",
    )
]


def _oracle() -> casbin.Enforcer:
    """pycasbin with the setup calls roles.yaml declares."""
    model = casbin.model.Model()
    model.load_model_from_text(MODEL)
    enforcer = casbin.Enforcer(model)
    for line in POLICY.splitlines():
        ptype, *values = [v.strip() for v in line.split(",")]
        (enforcer.add_named_policy if ptype == "p" else enforcer.add_named_grouping_policy)(ptype, values)
    enforcer.add_named_matching_func("g2", casbin.util.key_match2)
    enforcer.add_named_domain_matching_func("g", casbin.util.key_match)
    return enforcer


def _write_set(folder: Path, roles: str = ROLES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.conf").write_text(MODEL, encoding="utf-8")
    (folder / "policy.csv").write_text(POLICY, encoding="utf-8")
    (folder / "schema.yaml").write_text(SCHEMA, encoding="utf-8")
    (folder / "roles.yaml").write_text(roles, encoding="utf-8")
    return folder


def ctl(server: ServerHandle, *args: str) -> tuple[int, str, str]:
    """policyctl against the server; pushes from the test's scratch folders, which are not in git."""
    out, err = io.StringIO(), io.StringIO()
    remote = ["--server", server.target, "--token-file", str(server.admin_token_file)]
    extra = ["--allow-dirty"] if args[0] == "push" else []
    code = policyctl.run([args[0], *remote, *extra, *args[1:]], out, err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def server() -> Iterator[ServerHandle]:
    with running_server(ROOT / "policies") as handle:
        yield handle


def test_pushed_pattern_roles_decide_as_pycasbin(server: ServerHandle, tmp_path: Path) -> None:
    """A set pushed with roles.yaml and activated decides every Check as pycasbin with
    add_named_matching_func("g2", keyMatch2) and add_named_domain_matching_func("g", keyMatch)."""
    folder = _write_set(tmp_path / "gh")
    code, out, err = ctl(server, "push", str(folder), "--set", "gh", "--activate", "--output", "json")
    assert code == 0, err
    assert json.loads(out)["version"]["sha256"] == bundle_digest(load_bundle(folder, name="gh"))
    oracle = _oracle()
    decided = []
    with SyncClient(server.target) as client:
        for subject, tenant, resource in REQUESTS:
            result = client.check(
                policy_set="gh", tenant=tenant, subject=subject, action="invoke", resource=resource, min_version=1
            )
            assert result.policy_version == 1
            expected = oracle.enforce(subject, tenant, resource, "invoke")
            assert result.allowed == expected, (subject, tenant, resource)
            decided.append(expected)
    assert any(decided) and not all(decided)
    assert oracle.enforce("alice", "initech", "tool:mcp/github/create_issue", "invoke") is False
    assert oracle.enforce("alice", "globex", "tool:mcp/github/repos/list", "invoke") is True


def test_a_version_served_from_the_store_keeps_its_roles(tmp_path: Path) -> None:
    """After a restart on the same database the active version still decides with its pattern roles."""
    folder = _write_set(tmp_path / "gh")
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with running_server(ROOT / "policies", db_url=url) as first:
        assert ctl(first, "push", str(folder), "--set", "gh", "--activate")[0] == 0
    with running_server(None, db_url=url) as second, SyncClient(second.target) as client:
        result = client.check(
            policy_set="gh", tenant="globex", subject="alice", action="invoke",
            resource="tool:mcp/github/create_issue", min_version=1,
        )  # fmt: skip
    assert result.allowed and result.policy_version == 1


def test_export_writes_roles_yaml_and_round_trips_to_the_same_sha(server: ServerHandle, tmp_path: Path) -> None:
    """export writes roles.yaml back: the folder loads to the stored sha256 and pushes as no new version."""
    _write_set(tmp_path / "gh")
    assert ctl(server, "push", str(tmp_path / "gh"), "--set", "gh")[0] == 0
    target = tmp_path / "exported"
    code, _, err = ctl(server, "export", "1", str(target), "--set", "gh")
    assert code == 0, err
    assert (target / "roles.yaml").read_text(encoding="utf-8") == ROLES
    with AdminClient(server.target, token=server.admin_token) as admin:
        version, files = admin.get("gh", 1)
    assert files.roles == ROLES
    assert bundle_digest(load_bundle(target, name="gh")) == version.sha256
    code, out, err = ctl(server, "push", str(target), "--set", "gh", "--output", "json")
    assert code == 0, err
    pushed = json.loads(out)
    assert pushed["created"] is False and pushed["version"]["number"] == 1
    code, out, _ = ctl(server, "show", "1", "--set", "gh")
    assert "--- roles.yaml ---" in out and "names: keyMatch2" in out


def test_roles_yaml_alone_makes_a_new_version_and_diff_shows_it(server: ServerHandle, tmp_path: Path) -> None:
    """Changing only roles.yaml pushes a new version whose decisions change, and diff prints the change."""
    folder = _write_set(tmp_path / "gh")
    assert ctl(server, "push", str(folder), "--set", "gh", "--activate")[0] == 0
    _write_set(folder, roles="g:\n  domains: keyMatch\n")  # g2 names no longer match by pattern
    code, out, err = ctl(server, "push", str(folder), "--set", "gh", "--activate", "--output", "json")
    assert code == 0, err
    assert json.loads(out)["version"]["number"] == 2
    with SyncClient(server.target) as client:
        result = client.check(
            policy_set="gh", tenant="acme", subject="alice", action="invoke",
            resource="tool:mcp/github/create_issue", min_version=2,
        )  # fmt: skip
    assert not result.allowed
    code, out, _ = ctl(server, "diff", "1", "2", "--set", "gh")
    assert code == 0
    assert "--- v1/roles.yaml" in out and "-g2:" in out
    code, out, _ = ctl(server, "diff", "1", "2", "--set", "gh", "--output", "json")
    assert "-  names: keyMatch2" in json.loads(out)["roles_diff"]


def test_a_bad_roles_yaml_is_refused_by_push_with_file_and_line(server: ServerHandle, tmp_path: Path) -> None:
    """The server refuses a pushed roles.yaml naming an unknown function, with roles.yaml:line, storing nothing."""
    folder = _write_set(tmp_path / "gh", roles="g2:\n  names: keyMatch9\n")
    bundle = load_bundle(folder, name="gh")
    files = BundleFiles(bundle.model_text, bundle.policy_text, {}, bundle.schema_text, bundle.roles_text)
    with AdminClient(server.target, token=server.admin_token) as admin, pytest.raises(grpc.RpcError) as caught:
        admin.push("gh", files, message="bad", author="t")
    assert "roles.yaml:2" in caught.value.details()
    code, _, err = ctl(server, "versions", "--set", "gh")
    assert code != 0 and "unknown policy set 'gh'" in err
