"""Many replicas, one PostgreSQL: activation reaches every replica, pushes never collide or tear."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from policy_engine.bundle import load_bundle
from policy_engine.client import SyncClient
from policy_engine.client.admin import AdminClient, BundleFiles
from policy_engine.store import PolicyRepository, ensure_schema, open_database
from tests.support.processes import admin_token, health_status, serve_process, wait_serving
from tests.support.tcp_proxy import TcpProxy

ROOT = Path(__file__).resolve().parents[2]


def variant(n: int) -> BundleFiles:
    """The example bundle plus one distinct harmless rule, so each variant is a new version."""
    bundle = load_bundle(ROOT / "policies" / "default")
    rule = f"p, viewer, *, tool:variant_{n}, invoke, True, allow\n"
    return BundleFiles(bundle.model_text, bundle.policy_text + rule, dict(bundle.tests))


def test_activation_through_one_replica_reaches_the_other_within_a_second(postgres_url: str, tmp_path: Path) -> None:
    """Replica B answers with the version activated through replica A, under a one-second deadline."""
    with serve_process(postgres_url, ROOT / "policies", tmp_path) as (a, _), serve_process(
        postgres_url, ROOT / "policies", tmp_path
    ) as (b, _):
        with AdminClient(a, token=admin_token(tmp_path)) as admin:
            pushed = admin.push("default", variant(1), message="v2", author="ops")
            assert [v.number for v in admin.versions("default") if v.active] == [1]
            admin.activate("default", pushed.version.number, author="ops", reason="go")
        with SyncClient(b) as client:
            result = client.check(
                tenant="acme", subject="dave", action="invoke", resource="tool:variant_1",
                min_version=2, timeout=1.0,
            )
        assert result.policy_version == 2
        assert result.allowed


def test_concurrent_pushes_are_gap_free_and_no_activation_is_lost(postgres_url: str, tmp_path: Path) -> None:
    """Eight clients pushing and activating at once get distinct, consecutive numbers; every activation is recorded."""
    with serve_process(postgres_url, ROOT / "policies", tmp_path) as (a, _), serve_process(
        postgres_url, ROOT / "policies", tmp_path
    ) as (b, _):
        numbers: list[int] = []
        errors: list[BaseException] = []

        def push(n: int) -> None:
            try:
                with AdminClient(a if n % 2 else b, token=admin_token(tmp_path)) as admin:
                    outcome = admin.push("default", variant(n), message=f"v{n}", author=f"c{n}")
                    numbers.append(outcome.version.number)
                    admin.activate("default", outcome.version.number, author=f"c{n}", reason="race")
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=push, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert sorted(numbers) == list(range(2, 10))
        with AdminClient(a, token=admin_token(tmp_path)) as admin:
            history = list(reversed(admin.activations("default", limit=100)))
        assert len(history) == 9
        for before, after in zip(history, history[1:], strict=False):
            assert after.previous_version == before.version


def test_push_killed_midway_leaves_no_partial_version(postgres_url: str, tmp_path: Path) -> None:
    """A pusher killed after writing its version row but before commit leaves nothing behind."""
    engine = open_database(postgres_url)
    ensure_schema(engine, postgres_url)
    script = textwrap.dedent(
        f"""
        import sys, time
        from sqlalchemy import event
        from policy_engine.store import NewVersion, PolicyRepository, open_database
        engine = open_database({postgres_url!r})

        @event.listens_for(engine, "after_execute")
        def hang(conn, clause, *args):
            if "INSERT INTO policy_versions" in str(clause):
                print("written", flush=True)
                time.sleep(60)

        PolicyRepository(engine).add_version("default", NewVersion(
            model_text="m", policy_text="p", sha256="a" * 64, rule_count=1, message="", author="x"))
        """
    )
    pusher = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert pusher.stdout is not None
    assert pusher.stdout.readline().strip() == "written"
    pusher.kill()
    pusher.wait()
    repository = PolicyRepository(engine)
    with pytest.raises(Exception, match="unknown policy set"):
        repository.list_versions("default")
    engine.dispose()


def test_server_started_while_database_down_serves_once_it_is_up(postgres_url: str, tmp_path: Path) -> None:
    """With PostgreSQL unreachable the server listens NOT_SERVING and refuses checks; once it is reachable, it serves."""
    proxy = TcpProxy(("127.0.0.1", 5432))
    url = postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    try:
        with serve_process(url, ROOT / "policies", tmp_path, wait=False) as (target, process):
            deadline_polls = 0
            while health_status(target) is None and deadline_polls < 100:
                deadline_polls += 1
                threading.Event().wait(0.1)
            assert health_status(target) == health_pb2.HealthCheckResponse.NOT_SERVING
            with SyncClient(target) as client, pytest.raises(grpc.RpcError) as caught:
                client.check(tenant="acme", subject="dave", action="invoke", resource="tool:web_search")
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            proxy.start()
            wait_serving(target, process, timeout=30)
            with SyncClient(target) as client:
                assert client.check(tenant="acme", subject="dave", action="invoke", resource="tool:web_search").allowed
            proxy.stop()
            # the database going away again does not stop decisions on the loaded version
            with SyncClient(target) as client:
                assert client.check(tenant="acme", subject="dave", action="invoke", resource="tool:web_search").allowed
    finally:
        proxy.close()
