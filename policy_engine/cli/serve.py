"""`policy-engine`: run the decision service, manage its database schema.

    policy-engine serve [--listen HOST:PORT] [--db URL] [--policies DIR] [--insecure]
    policy-engine db upgrade|current [--db URL]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
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
)
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
        )
        asyncio.run(_serve(settings))
    except (ConfigError, InsecureBindError, SchemaOutdatedError, StoreError, OSError) as exc:
        print(f"policy-engine: {exc}", file=stderr)
        return 1
    return 0


async def _serve(settings: Settings) -> None:
    running = await start_server(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down: draining in-flight requests")
    await running.stop(settings.grace_seconds)


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
