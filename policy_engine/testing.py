"""Helpers for tests, yours and ours: a real server in-process on a free loopback port.

    from policy_engine.testing import running_server
    from policy_engine.client import SyncClient

    with running_server("policies") as server, SyncClient(server.target) as client:
        assert client.check(tenant="acme", subject="dave", action="invoke",
                            resource="tool:web_search").allowed

`policies` is either a folder of policy sets (each a folder with model.conf)
or one policy set folder, served as the set `policy_set` (default: its name).
A fixed `port` lets a test stop a server and start another where clients expect it.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from policy_engine.config import AdmissionSettings, AuditSettings, EdgeSettings, ThreatSettings
from policy_engine.config import SecuritySettings, Settings
from policy_engine.server.app import RunningServer, start_server

__all__ = ["ServerHandle", "running_server"]


@dataclass(frozen=True)
class ServerHandle:
    """A started in-process server: where to reach it and what it runs on.

    `admin_token`: the local admin credential, when callers are not authenticated (pass it as
    the admin client's `token`); `admin_token_file` holds it (policyctl's `--token-file`).
    """

    target: str
    port: int
    db_url: str
    admin_token: str | None = None
    admin_token_file: Path | None = None

    def __str__(self) -> str:
        return self.target


@contextmanager
def running_server(
    policies: str | Path | None,
    *,
    db_url: str | None = None,
    reload_interval: float = 0.2,
    port: int = 0,
    policy_set: str | None = None,
    security: SecuritySettings | None = None,
    audit: AuditSettings | None = None,
    threats: ThreatSettings | None = None,
    edge: EdgeSettings | None = None,
    admission: AdmissionSettings | None = None,
) -> Iterator[ServerHandle]:
    """Run a real server (SQLite in a temporary folder unless `db_url`) until the block ends."""
    with tempfile.TemporaryDirectory(prefix="policy-engine-") as scratch:
        url = db_url or f"sqlite:///{Path(scratch) / 'policy-engine.db'}"
        folder = Path(policies) if policies is not None else None
        if folder is not None and (folder / "model.conf").is_file():
            root = Path(scratch) / "policies"
            shutil.copytree(folder, root / (policy_set or folder.resolve().name))
            folder = root
        settings = Settings(
            listen=f"127.0.0.1:{port}",
            db_url=url,
            policies=folder,
            reload_interval=reload_interval,
            grace_seconds=0.5,
            security=security if security is not None else SecuritySettings(),
            audit=audit
            if audit is not None
            else AuditSettings(spill_dir=Path(scratch) / "audit", writer="thread"),
            threats=threats if threats is not None else ThreatSettings(),
            edge=_with_token_file(edge or EdgeSettings(), Path(scratch) / "admin-token"),
            admission=admission if admission is not None else AdmissionSettings(),
        )
        loop = asyncio.new_event_loop()
        started: dict[str, RunningServer | BaseException] = {}
        ready = threading.Event()
        stop: asyncio.Event | None = None

        async def main() -> None:
            nonlocal stop
            stop = asyncio.Event()
            try:
                server = await start_server(settings)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                started["error"] = exc
                ready.set()
                return
            started["server"] = server
            ready.set()
            await stop.wait()
            await server.stop(settings.grace_seconds)

        thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
        thread.start()
        ready.wait()
        if "error" in started:
            thread.join()
            loop.close()
            raise started["error"]  # type: ignore[misc]
        server = started["server"]
        assert isinstance(server, RunningServer)
        try:
            token_file = settings.edge.local_admin.token_file
            token = token_file.read_text(encoding="ascii").strip() if token_file and token_file.exists() else None
            yield ServerHandle(
                f"127.0.0.1:{server.port}", server.port, url, token, token_file if token else None
            )
        finally:
            loop.call_soon_threadsafe(stop.set)  # type: ignore[union-attr]
            thread.join()
            loop.close()


def _with_token_file(edge: EdgeSettings, default: Path) -> EdgeSettings:
    """The local admin credential in the server's scratch folder unless the test chose a file."""
    if edge.local_admin.token_file is not None:
        return edge
    return replace(edge, local_admin=replace(edge.local_admin, token_file=default))
