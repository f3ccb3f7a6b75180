"""Run `policy-engine serve` as a real process and wait for it to be healthy."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

BIN = Path(sys.executable).parent


_handed_out: set[int] = set()


def free_port() -> int:
    """A free loopback port below the kernel's ephemeral range.

    Between this check and the server's bind, and while a test keeps a server stopped, an
    outgoing connection could take a port from the ephemeral range as its own, even a
    client's retry to this very port (a TCP self-connect); a port outside it cannot be.
    """
    ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    candidates = [port for port in range(10_000, ephemeral_low) if port not in _handed_out]
    for port in random.sample(candidates, len(candidates)):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free loopback port in 10000-{ephemeral_low - 1}")


def health_status(target: str) -> int | None:
    with grpc.insecure_channel(target) as channel:
        try:
            return health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1
            ).status
        except grpc.RpcError:
            return None


def wait_serving(target: str, process: subprocess.Popen[str] | None = None, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"server exited early: {process.stderr.read() if process.stderr else ''}")
        if health_status(target) == health_pb2.HealthCheckResponse.SERVING:
            return
        time.sleep(0.1)
    raise AssertionError(f"{target} did not become SERVING within {timeout}s")


def admin_token_file(workdir: Path) -> Path:
    """Where the servers `serve_process` starts in `workdir` keep their local admin credential."""
    return workdir / "admin-token"


def admin_token(workdir: Path) -> str:
    """The local admin credential of the servers started in `workdir`."""
    return admin_token_file(workdir).read_text(encoding="ascii").strip()


@contextmanager
def serve_process(db_url: str, policies: Path | None, workdir: Path, wait: bool = True) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A `policy-engine serve` process on a free port; SIGTERM and a clean exit at the end."""
    target = f"127.0.0.1:{free_port()}"
    args = [str(BIN / "policy-engine"), "serve", "--listen", target, "--db", db_url]
    args += ["--policies", str(policies) if policies else str(workdir / "no-policies")]
    log = (workdir / f"serve-{target.rsplit(':', 1)[1]}.log").open("w+")
    environment = {**os.environ, "POLICY_ENGINE_ADMIN_TOKEN_FILE": str(admin_token_file(workdir))}
    process = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=log, text=True, cwd=workdir, env=environment
    )
    try:
        if wait:
            wait_serving(target, process)
        yield target, process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
