"""The admin API and policyctl against a real in-process server: push, activate, rollback, diff."""

from __future__ import annotations

import getpass
import io
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from policy_engine.bundle import bundle_digest, load_bundle
from policy_engine.cli import policyctl
from policy_engine.client import SyncClient
from policy_engine.client.admin import AdminClient, BundleFiles
from policy_engine.testing import ServerHandle, running_server

LOCAL_ADMIN = f"local-admin:{getpass.getuser()}"
ROOT = Path(__file__).resolve().parents[2]
CALCULATOR = "p, viewer, *, tool:calculator, invoke, True, allow\n"


def git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
        cwd=cwd, check=True, capture_output=True,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository holding a copy of policies/default, committed."""
    shutil.copytree(ROOT / "policies" / "default", tmp_path / "policies" / "default")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "policies")
    return tmp_path


@pytest.fixture
def server(repo: Path) -> Iterator[ServerHandle]:
    with running_server(repo / "policies") as handle:
        yield handle


def ctl(server: ServerHandle, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    argv = list(args)
    remote = ["--server", server.target, "--token-file", str(server.admin_token_file)]
    code = policyctl.run([*argv[:1], *remote, *argv[1:]] if argv[0] not in ("test", "validate") else argv, out, err)
    return code, out.getvalue(), err.getvalue()


def commit_change(repo: Path, extra: str, message: str = "change") -> Path:
    folder = repo / "policies" / "default"
    with (folder / "policy.csv").open("a") as handle:
        handle.write(extra)
    git(repo, "commit", "-qam", message)
    return folder


def files(folder: Path) -> BundleFiles:
    bundle = load_bundle(folder)
    return BundleFiles(bundle.model_text, bundle.policy_text, dict(bundle.tests))


class TestPush:
    def test_push_records_provenance_and_does_not_activate(self, server, repo) -> None:  # type: ignore[no-untyped-def]
        """A push stores version 2 with the git commit and author, and leaves version 1 active."""
        folder = commit_change(repo, CALCULATOR)
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
        code, out, err = ctl(server, "push", str(folder), "-m", "calculator", "--author", "ann", "--output", "json")
        assert code == 0, err
        pushed = json.loads(out)
        assert pushed["created"] is True
        assert pushed["version"]["number"] == 2
        assert pushed["version"]["git_commit"] == head
        # The author is the authenticated caller (the local admin), not the one the request claims.
        assert pushed["version"]["author"] == LOCAL_ADMIN
        with AdminClient(server.target, token=server.admin_token) as admin:
            assert [v.active for v in admin.versions("default")] == [True, False]

    def test_identical_push_returns_existing_version(self, server, repo) -> None:  # type: ignore[no-untyped-def]
        """Pushing content identical to version 1 creates nothing."""
        code, out, _ = ctl(server, "push", str(repo / "policies" / "default"), "--output", "json")
        assert code == 0
        assert json.loads(out)["created"] is False
        assert json.loads(out)["version"]["number"] == 1

    def test_dirty_tree_is_refused_unless_allowed(self, server, repo) -> None:  # type: ignore[no-untyped-def]
        """Uncommitted changes are refused; --allow-dirty pushes and records the tree as dirty."""
        folder = repo / "policies" / "default"
        with (folder / "policy.csv").open("a") as handle:
            handle.write(CALCULATOR)
        code, _, err = ctl(server, "push", str(folder))
        assert code == 2
        assert "uncommitted" in err
        code, out, _ = ctl(server, "push", str(folder), "--allow-dirty", "--output", "json")
        assert code == 0
        assert json.loads(out)["version"]["git_dirty"] is True

    def test_failing_tests_are_refused_with_file_and_line(self, server, repo) -> None:  # type: ignore[no-untyped-def]
        """A bundle whose tests fail is refused over the API, every failure listed, nothing written."""
        folder = repo / "policies" / "default"
        bad = load_bundle(folder)
        rules = bad.policy_text.replace("p, viewer, *, tool:web_search, invoke, True, allow", "")
        with AdminClient(server.target, token=server.admin_token) as admin, pytest.raises(grpc.RpcError) as caught:
            admin.push("default", BundleFiles(bad.model_text, rules, dict(bad.tests)), message="x", author="ann")
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "tests/tools_test.yaml:" in caught.value.details()
        with AdminClient(server.target, token=server.admin_token) as admin:
            assert len(admin.versions("default")) == 1

    def test_lint_failure_is_refused(self, server, repo) -> None:  # type: ignore[no-untyped-def]
        """A bundle with a non-plain eval condition is refused naming policy.csv and the line."""
        bundle = load_bundle(repo / "policies" / "default")
        rules = bundle.policy_text + "p, viewer, *, tool:x, invoke, __import__('os'), allow\n"
        with AdminClient(server.target, token=server.admin_token) as admin, pytest.raises(grpc.RpcError) as caught:
            admin.push("default", BundleFiles(bundle.model_text, rules, {}), message="x", author="ann")
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "policy.csv:" in caught.value.details()

    def test_push_with_activate_serves_new_version(self, server, repo) -> None:  # type: ignore[no-untyped-def]
        """push --activate makes the new version live; a check with min_version sees it."""
        folder = commit_change(repo, CALCULATOR)
        code, _, err = ctl(server, "push", str(folder), "--activate", "-m", "calculator")
        assert code == 0, err
        with SyncClient(server.target) as client:
            result = client.check(tenant="acme", subject="dave", action="invoke", resource="tool:calculator", min_version=2)
        assert result.allowed and result.policy_version == 2

    def test_second_policy_set_lives_beside_default(self, server, repo) -> None:  # type: ignore[no-untyped-def]
        """A second set is pushed, activated and checked by name without touching default."""
        other = repo / "policies" / "other"
        shutil.copytree(repo / "policies" / "default", other)
        git(repo, "add", ".")
        git(repo, "commit", "-qm", "other")
        assert ctl(server, "push", str(other), "--activate")[0] == 0
        with SyncClient(server.target) as client:
            result = client.check(policy_set="other", tenant="acme", subject="dave", action="invoke", resource="tool:web_search", min_version=1)
        assert result.allowed


class TestActivation:
    def test_activate_rollback_and_history(self, server, repo) -> None:  # type: ignore[no-untyped-def]
        """Activate v2, roll back to v1; the activations list records both with who and why."""
        folder = commit_change(repo, CALCULATOR)
        assert ctl(server, "push", str(folder))[0] == 0
        code, out, _ = ctl(server, "activate", "2", "--reason", "ship calculator", "--author", "bea")
        assert code == 0 and "version 2 is active (was 1)" in out
        code, out, _ = ctl(server, "rollback", "--reason", "oops", "--author", "cid")
        assert code == 0 and "version 1 is active (was 2)" in out
        code, out, _ = ctl(server, "activations", "--output", "json")
        history = json.loads(out)
        assert [(a["version"], a["previous_version"], a["actor"], a["reason"]) for a in history[:2]] == [
            (1, 2, LOCAL_ADMIN, "oops"),
            (2, 1, LOCAL_ADMIN, "ship calculator"),
        ]

    def test_stale_expectation_is_failed_precondition(self, server, repo) -> None:  # type: ignore[no-untyped-def]
        """Activating with --expect-active that is not the active version is refused and changes nothing."""
        folder = commit_change(repo, CALCULATOR)
        ctl(server, "push", str(folder))
        with AdminClient(server.target, token=server.admin_token) as admin, pytest.raises(grpc.RpcError) as caught:
            admin.activate("default", 2, author="x", reason="", expected_active=2)
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        code, _, err = ctl(server, "activate", "2", "--expect-active", "7")
        assert code == 2 and "FAILED_PRECONDITION" in err
        with AdminClient(server.target, token=server.admin_token) as admin:
            assert [v.number for v in admin.versions("default") if v.active] == [1]

    def test_unknown_set_and_version_are_not_found(self, server) -> None:  # type: ignore[no-untyped-def]
        """Unknown sets and versions are NOT_FOUND."""
        with AdminClient(server.target, token=server.admin_token) as admin:
            for call in (lambda: admin.versions("nope"), lambda: admin.activate("default", 9, author="x", reason=""), lambda: admin.get("default", 5)):
                with pytest.raises(grpc.RpcError) as caught:
                    call()
                assert caught.value.code() == grpc.StatusCode.NOT_FOUND

    def test_watch_streams_activations(self, server, repo) -> None:  # type: ignore[no-untyped-def]
        """WatchActivations delivers an activation made after the watch started."""
        folder = commit_change(repo, CALCULATOR)
        ctl(server, "push", str(folder))
        seen = []
        with AdminClient(server.target, token=server.admin_token) as admin:
            stream = admin.watch("default")
            started = threading.Event()

            def consume() -> None:
                started.set()
                seen.append(next(stream))

            thread = threading.Thread(target=consume)
            thread.start()
            started.wait()
            import time

            time.sleep(0.5)
            admin.activate("default", 2, author="w", reason="watch me")
            thread.join(timeout=10)
        assert seen and seen[0].version == 2 and seen[0].reason == "watch me"


class TestInspection:
    def test_diff_lists_rules_and_model_changes(self, server, repo) -> None:  # type: ignore[no-untyped-def]
        """diff shows added and removed rules with lines, and the model's unified diff."""
        folder = repo / "policies" / "default"
        text = (folder / "policy.csv").read_text().replace("p, viewer, *, memory:session/*, write, True, allow\n", "")
        (folder / "policy.csv").write_text(text + CALCULATOR)
        (folder / "model.conf").write_text((folder / "model.conf").read_text() + "# note\n")
        git(repo, "commit", "-qam", "swap")
        # the removed rule was exercised by tests: drop them from this version's tests
        assert ctl(server, "push", str(folder))[0] == 2
        for test in (folder / "tests").glob("*.yaml"):
            test.write_text("\n".join(l for l in test.read_text().splitlines() if "session_memory, expect" not in l) + "\n")
        git(repo, "commit", "-qam", "tests")
        assert ctl(server, "push", str(folder))[0] == 0
        code, out, _ = ctl(server, "diff", "1", "2", "--output", "json")
        diff = json.loads(out)
        assert [r[0] for r in diff["added"]] == [CALCULATOR.strip()]
        assert [r[0] for r in diff["removed"]] == ["p, viewer, *, memory:session/*, write, True, allow"]
        assert "+# note" in diff["model_diff"]
        assert diff["tests_changed"]
        code, out, _ = ctl(server, "diff", "1", "2")
        assert out.splitlines()[0].startswith("- p, viewer, *, memory:session/*")

    def test_show_and_versions_tables(self, server) -> None:  # type: ignore[no-untyped-def]
        """versions prints a table with the active version starred; show prints the metadata."""
        code, out, _ = ctl(server, "versions")
        assert code == 0
        assert out.splitlines()[1].startswith("*  1")
        code, out, _ = ctl(server, "show", "1")
        assert "sha256" in out and "(active)" in out

    def test_export_round_trips_to_same_sha(self, server, tmp_path) -> None:  # type: ignore[no-untyped-def]
        """export writes files that load to the same sha256 as the stored version."""
        target = tmp_path / "exported"
        assert ctl(server, "export", "1", str(target))[0] == 0
        with AdminClient(server.target, token=server.admin_token) as admin:
            version, _ = admin.get("default", 1)
        assert bundle_digest(load_bundle(target, name="default")) == version.sha256

    def test_unreachable_server_exit_code(self, tmp_path) -> None:  # type: ignore[no-untyped-def]
        """Admin commands against a closed port exit 3."""
        out, err = io.StringIO(), io.StringIO()
        code = policyctl.run(["versions", "--server", "127.0.0.1:1", "--timeout", "1"], out, err)
        assert code == 3
