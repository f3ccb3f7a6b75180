"""The real `policy-engine serve` process, asked through a real channel and through policyctl."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from policy_engine.client import SyncClient
from tests.support.processes import BIN, free_port, wait_serving


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    workdir = tmp_path_factory.mktemp("serve")
    target = f"127.0.0.1:{free_port()}"
    root = Path(__file__).resolve().parents[2]
    log_path = workdir / "serve.log"
    process = subprocess.Popen(
        [
            str(BIN / "policy-engine"),
            "serve",
            "--listen",
            target,
            "--db",
            f"sqlite:///{workdir / 'pe.db'}",
            "--policies",
            str(root / "policies"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=workdir,
    )
    try:
        wait_serving(target, process)
        yield target, log_path
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
        log_path.write_text(stderr)
    assert process.returncode == 0, stderr


def policyctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "policyctl"), *args], capture_output=True, text=True, timeout=30, check=False
    )


class TestServeProcess:
    def test_allow(self, served) -> None:  # type: ignore[no-untyped-def]
        """A viewer may use web search."""
        with SyncClient(served[0]) as client:
            result = client.check(tenant="acme", subject="dave", action="invoke", resource="tool:web_search")
        assert result.allowed
        assert result.policy_version == 1

    def test_deny(self, served) -> None:  # type: ignore[no-untyped-def]
        """A viewer may not query SQL."""
        with SyncClient(served[0]) as client:
            result = client.check(tenant="acme", subject="dave", action="invoke", resource="tool:sql_query")
        assert not result.allowed

    def test_actor_denied(self, served) -> None:  # type: ignore[no-untyped-def]
        """The helper agent cannot run SQL even for an analyst who can."""
        with SyncClient(served[0]) as client:
            result = client.check(
                tenant="acme", subject="carol", action="invoke", resource="tool:sql_query", actor="agent:helper"
            )
        assert not result.allowed
        assert result.denied_party == "actor"

    def test_invalid_input(self, served) -> None:  # type: ignore[no-untyped-def]
        """A missing tenant is INVALID_ARGUMENT naming the field."""
        with SyncClient(served[0]) as client, pytest.raises(grpc.RpcError) as caught:
            client.check(tenant="", subject="dave", action="invoke", resource="tool:web_search")
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "tenant" in caught.value.details()

    def test_policyctl_check_json(self, served) -> None:  # type: ignore[no-untyped-def]
        """policyctl check prints the decision as JSON and exits 0 on allow."""
        result = policyctl(
            "check", "--server", served[0], "--tenant", "acme", "--subject", "bob",
            "--action", "invoke", "--resource", "tool:shell_exec", "--subject-attr", "mfa=true",
            "--explain", "--output", "json",
        )
        assert result.returncode == 0, result.stderr
        body = json.loads(result.stdout)
        assert body["allowed"] is True
        assert body["policy_version"] == 1

    def test_policyctl_check_deny_text(self, served) -> None:  # type: ignore[no-untyped-def]
        """policyctl check prints DENY with the reason and exits 1 on a denial."""
        result = policyctl(
            "check", "--server", served[0], "--tenant", "acme", "--subject", "bob",
            "--action", "invoke", "--resource", "tool:shell_exec", "--subject-attr", "mfa=false",
            "--actor", "agent:helper",
        )
        assert result.returncode == 1
        assert result.stdout.startswith("DENY")
        assert "reason:" in result.stdout


def test_policyctl_unreachable_server() -> None:
    """policyctl check against a closed port exits 3 (unreachable), not 'denied'."""
    result = policyctl(
        "check", "--server", f"127.0.0.1:{free_port()}", "--timeout", "1", "--tenant", "acme",
        "--subject", "dave", "--action", "invoke", "--resource", "tool:web_search",
    )
    assert result.returncode == 3


def test_refuses_non_loopback_without_insecure(tmp_path: Path) -> None:
    """Binding a public address without authentication is refused with the reason."""
    result = subprocess.run(
        [str(BIN / "policy-engine"), "serve", "--listen", f"0.0.0.0:{free_port()}", "--db", f"sqlite:///{tmp_path}/x.db"],
        capture_output=True, text=True, timeout=30, check=False, cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "--insecure" in result.stderr


def test_serve_logs_what_it_loaded(tmp_path: Path) -> None:
    """Start-up logs the policy set, version and rule count, then that it listens."""
    target = f"127.0.0.1:{free_port()}"
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "POLICY_ENGINE_LISTEN": target, "POLICY_ENGINE_DB": f"sqlite:///{tmp_path}/pe.db"}
    process = subprocess.Popen(
        [str(BIN / "policy-engine"), "serve", "--policies", str(root / "policies")],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env, cwd=tmp_path,
    )
    wait_serving(target, process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=20)
    assert re.search(r"loaded policy set default version 1 \(\d+ rules", stderr)
    assert f"listening on {target}" in stderr
