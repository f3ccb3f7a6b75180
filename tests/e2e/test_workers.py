"""`policy-engine serve --workers 2`: two processes on one port, each its own decision-log replica."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import grpc

from policy_engine.store import open_database
from policy_engine.store.decision_log import DecisionLogRepository
from policy_engine.v1 import authorization_pb2, authorization_pb2_grpc, types_pb2
from tests.support.processes import BIN, free_port, wait_serving

ROOT = Path(__file__).resolve().parents[2]
CHECKS = 40


def wait_for_line(path: Path, text: str, process: subprocess.Popen[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text():
            return
        if process.poll() is not None:
            raise AssertionError(f"supervisor exited early: {path.read_text()}")
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not logged within {timeout}s: {path.read_text()}")


def test_two_workers_share_the_port_and_both_log_their_decisions(tmp_path: Path) -> None:
    port = free_port()
    target = f"127.0.0.1:{port}"
    db_url = f"sqlite:///{tmp_path / 'pe.db'}"
    stderr_path = tmp_path / "serve.log"
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            [
                str(BIN / "policy-engine"), "serve", "--workers", "2", "--listen", target,
                "--db", db_url, "--policies", str(ROOT / "policies"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            text=True,
            cwd=tmp_path,
        )
    try:
        wait_serving(target, process)
        # The supervisor starts the workers one after the other: wait until both listen.
        wait_for_line(stderr_path, "2 workers serving", process)
        request = authorization_pb2.CheckRequest(
            tenant="acme",
            subject=types_pb2.Entity(id="dave"),
            action="invoke",
            resource=types_pb2.Resource(kind="tool", id="web_search"),
        )
        for _ in range(CHECKS):
            # A new connection each time: the kernel spreads connections across the workers.
            with grpc.insecure_channel(target) as channel:
                response = authorization_pb2_grpc.AuthorizationServiceStub(channel).Check(request, timeout=10)
            assert response.allowed
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr_path.read_text()

    # Every answered decision is in the log after the clean exit, each from the worker that made it.
    database = open_database(db_url)
    try:
        logged = DecisionLogRepository(database).query(subject="dave", limit=10 * CHECKS)
    finally:
        database.dispose()
    assert len(logged) == CHECKS
    replicas = {decision.replica_id for decision in logged}
    assert replicas == {f"{socket.gethostname()}:{port}-w0", f"{socket.gethostname()}:{port}-w1"}
