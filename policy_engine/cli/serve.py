"""`policy-engine`: run the decision service, manage its database schema.

    policy-engine serve [--listen HOST:PORT] [--db URL] [--policies DIR] [--insecure] [--workers N]
    policy-engine db upgrade|current [--db URL]

With `--workers N` (N > 1) this process supervises N server processes listening on
the same port (SO_REUSEPORT: the kernel spreads connections across them). The port
must be free at start; the supervisor then keeps it reserved (bound, not listening)
until it exits, and the kernel lets only processes of the same user join a
SO_REUSEPORT group. Without --workers, a port already in use is an error. Each
worker is a whole server of its own: event loop, policies, caches, decision-log
replica ("<replica id>-w<index>", its own hash chain and spill file), rate-limit
buckets and denial counters (so per-caller and per-subject limits apply per worker),
and, with --metrics-listen, its metrics on that port + its index. The supervisor
starts them one after the other (the first imports the policies), forwards SIGTERM
and SIGINT to them and waits for them to drain; when a worker dies, it stops the
others and exits non-zero.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from policy_engine.config import (
    DEFAULT_DB,
    DEFAULT_LISTEN,
    ConfigError,
    FileConfig,
    Settings,
    load_config,
    split_host_port,
)
from policy_engine.auth.callers import LocalAdminCredentialError
from policy_engine.logs import configure_logging
from policy_engine.errors import SchemaOutdatedError, StoreError
from policy_engine.server.app import InsecureBindError, start_server
from policy_engine.store import open_database, schema_state, upgrade

__all__ = ["main", "run"]

log = logging.getLogger("policy_engine")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="policy-engine", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gRPC decision service")
    serve.add_argument(
        "--listen",
        default=os.environ.get("POLICY_ENGINE_LISTEN", DEFAULT_LISTEN),
        help=f"host:port to listen on (POLICY_ENGINE_LISTEN, default {DEFAULT_LISTEN})",
    )
    _db_option(serve)
    serve.add_argument(
        "--policies",
        type=Path,
        default=Path(os.environ.get("POLICY_ENGINE_POLICIES", "policies")),
        help="folder of policy sets to import when the database lacks them (default ./policies)",
    )
    serve.add_argument(
        "--insecure",
        action="store_true",
        help="allow a non-loopback listen address without authentication (dangerous)",
    )
    serve.add_argument(
        "--config",
        type=Path,
        default=os.environ.get("POLICY_ENGINE_CONFIG"),
        help="YAML file: authentication, TLS, rate limits (POLICY_ENGINE_CONFIG)",
    )
    serve.add_argument("--log-level", default=os.environ.get("POLICY_ENGINE_LOG_LEVEL", "INFO"))
    serve.add_argument(
        "--log-format",
        choices=("json", "text"),
        default=os.environ.get("POLICY_ENGINE_LOG_FORMAT", "json"),
        help="one JSON object per line (default), or plain text",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("POLICY_ENGINE_WORKERS", "1")),
        help="server processes sharing the listen port via SO_REUSEPORT (POLICY_ENGINE_WORKERS, "
        "default 1); each has its own decision-log replica (id suffixed -w<index>) and rate limits",
    )
    serve.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    serve.add_argument("--ready-fd", type=int, default=None, help=argparse.SUPPRESS)
    serve.add_argument(
        "--metrics-listen",
        default=os.environ.get("POLICY_ENGINE_METRICS_LISTEN"),
        help="host:port for the Prometheus /metrics endpoint (off by default)",
    )

    db = commands.add_parser("db", help="database schema (Alembic migrations)")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    for name, text in (("upgrade", "apply every pending migration"), ("current", "show the revision")):
        _db_option(db_commands.add_parser(name, help=text))
    return parser


def _db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        default=os.environ.get("POLICY_ENGINE_DB", DEFAULT_DB),
        help=f"SQLAlchemy database URL (POLICY_ENGINE_DB, default {DEFAULT_DB})",
    )


def run(argv: Sequence[str], stdout: TextIO, stderr: TextIO) -> int:
    args = _parser().parse_args(argv)
    if args.command == "db":
        return _db(args, stdout, stderr)
    configure_logging(args.log_level, args.log_format, stderr)
    if args.workers < 1:
        print("policy-engine: --workers must be at least 1", file=stderr)
        return 1
    if args.workers > 1 and args.worker_index is None:
        return _supervise(list(argv), args, stderr)
    try:
        config = load_config(Path(args.config)) if args.config else FileConfig()
        settings = Settings(
            listen=args.listen,
            db_url=args.db,
            policies=args.policies,
            insecure=args.insecure,
            security=config.security,
            audit=config.audit,
            threats=config.threats,
            metrics_listen=args.metrics_listen or config.metrics_listen,
            edge=config.edge,
            admission=config.admission,
        )
        asyncio.run(_serve(settings, args.worker_index, args.ready_fd))
    except (
        ConfigError,
        InsecureBindError,
        LocalAdminCredentialError,
        SchemaOutdatedError,
        StoreError,
        OSError,
    ) as exc:
        print(f"policy-engine: {exc}", file=stderr)
        return 1
    return 0


async def _serve(settings: Settings, worker: int | None = None, ready_fd: int | None = None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    running = await start_server(settings, worker)
    if ready_fd is not None:  # tell the supervisor this worker is listening
        os.write(ready_fd, b"1")
        os.close(ready_fd)
    await stop.wait()
    log.info("shutting down: draining in-flight requests")
    await running.stop(settings.grace_seconds)


def _supervise(argv: list[str], args: argparse.Namespace, stderr: TextIO) -> int:
    """Run `args.workers` server processes on one port; forward SIGTERM/SIGINT; wait for them."""
    try:
        _, port = split_host_port(args.listen)
    except ValueError as exc:
        print(f"policy-engine: {exc}", file=stderr)
        return 1
    if port == 0:
        print("policy-engine: --workers needs a fixed port to share (not port 0)", file=stderr)
        return 1
    try:
        reservation = _reserve_port(args.listen)
    except OSError as exc:
        print(f"policy-engine: cannot listen on {args.listen}: {exc.strerror or exc}", file=stderr)
        return 1
    try:
        return _run_workers(argv, args)
    finally:
        reservation.close()


def _reserve_port(listen: str) -> socket.socket:
    """Fail when anything listens on `listen` already; else hold it for our workers.

    The probe binds without SO_REUSEPORT, so it fails on any socket bound there, our own
    kind included. The reservation that follows binds with SO_REUSEPORT and never listens:
    it takes no connections, but keeps the port from other users (the kernel admits only one
    user's sockets to a SO_REUSEPORT group) and from processes that do not set the option.
    """
    host, port = split_host_port(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    address = (host or "0.0.0.0", port)
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(address)
    reservation = socket.socket(family, socket.SOCK_STREAM)
    reservation.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    reservation.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    reservation.bind(address)
    return reservation


def _run_workers(argv: list[str], args: argparse.Namespace) -> int:
    workers: list[subprocess.Popen[bytes]] = []
    stopping = False

    def stop_all(signum: int = signal.SIGTERM, _frame: object = None) -> None:
        nonlocal stopping
        stopping = True
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop_all) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for index in range(args.workers):
            if stopping:
                break
            read_end, write_end = os.pipe()
            command = [
                sys.executable, "-m", "policy_engine.cli.serve", *_without_db(argv),
                "--workers", "1", "--worker-index", str(index), "--ready-fd", str(write_end),
            ]
            # The database URL (and its password) goes in the environment, which only this
            # user can read, not on the command line that every local user can list.
            environment = {**os.environ, "POLICY_ENGINE_DB": args.db}
            workers.append(subprocess.Popen(command, pass_fds=(write_end,), env=environment))
            os.close(write_end)
            # One at a time: the first creates the schema and imports the policies.
            ready = _wait_ready(read_end)
            os.close(read_end)
            if not ready and not stopping:
                log.error("worker %d did not start (exit code %s)", index, workers[-1].poll())
                stop_all()
        if not stopping:
            log.info("%d workers serving on %s", len(workers), args.listen)
        failed = False
        remaining = list(workers)
        while remaining:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            done = [worker for worker in remaining if worker.pid == pid]
            for worker in done:
                remaining.remove(worker)
                worker.returncode = os.waitstatus_to_exitcode(status)
                if worker.returncode != 0 or not stopping:
                    failed = True
                    if not stopping:
                        log.error("worker pid %d exited (code %d); stopping the others", pid, worker.returncode)
                        stop_all()
        return 1 if failed else 0
    finally:
        stop_all()
        for worker in workers:
            if worker.returncode is None:
                worker.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _without_db(argv: list[str]) -> list[str]:
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--db":
            skip = True
        elif not arg.startswith("--db="):
            kept.append(arg)
    return kept


def _wait_ready(read_end: int) -> bool:
    """True once the worker writes to its ready pipe; False when it exits first (EOF)."""
    while True:
        readable, _, _ = select.select([read_end], [], [], 1.0)
        if readable:
            return os.read(read_end, 1) == b"1"


def _db(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    engine = open_database(args.db)
    try:
        if args.db_command == "upgrade":
            upgrade(engine)
        state = schema_state(engine)
    except Exception as exc:  # noqa: BLE001 - a CLI reports and exits
        print(f"policy-engine db: {exc}", file=stderr)
        return 1
    finally:
        engine.dispose()
    print(f"revision {state.current or 'none'} (code head {state.head})", file=stdout)
    return 0


def main() -> None:
    sys.exit(run(sys.argv[1:], sys.stdout, sys.stderr))


if __name__ == "__main__":
    main()
