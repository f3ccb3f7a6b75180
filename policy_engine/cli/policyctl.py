"""`policyctl`: test, validate and query policies.

    policyctl test DIR                 run a policy set's tests locally (no server)
    policyctl validate DIR             report what the engine will not accept, with file and line
    policyctl check --tenant T --subject S --action A --resource KIND:ID [...]
                                       ask the running service (--server / POLICY_ENGINE_ADDR)

Exit codes: 0 success (for check: allowed), 1 denied, 2 refused (bad input,
invalid bundle, failing tests), 3 the server is unreachable.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

import grpc

from policy_engine.bundle import compile_bundle, load_bundle, run_bundle_tests
from policy_engine.client import SyncClient
from policy_engine.errors import BundleError

__all__ = ["EXIT_DENIED", "EXIT_OK", "EXIT_REFUSED", "EXIT_UNREACHABLE", "main", "run"]

EXIT_OK = 0
EXIT_DENIED = 1
EXIT_REFUSED = 2
EXIT_UNREACHABLE = 3
DEFAULT_SERVER = "127.0.0.1:50051"
_UNREACHABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="policyctl",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n")[-1],
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--output", choices=("text", "json"), default="text")
    commands = parser.add_subparsers(dest="command", required=True)

    test = commands.add_parser("test", parents=[common], help="run a policy set's tests locally")
    test.add_argument("dir")
    validate = commands.add_parser(
        "validate", parents=[common], help="check that a policy set compiles"
    )
    validate.add_argument("dir")

    check = commands.add_parser("check", parents=[common], help="ask the service for a decision")
    check.add_argument(
        "--server",
        default=os.environ.get("POLICY_ENGINE_ADDR", DEFAULT_SERVER),
        help=f"host:port of the service (POLICY_ENGINE_ADDR, default {DEFAULT_SERVER})",
    )
    check.add_argument("--set", dest="policy_set", default="", help="policy set (default: default)")
    check.add_argument("--tenant", required=True)
    check.add_argument("--subject", required=True)
    check.add_argument("--action", required=True)
    check.add_argument("--resource", required=True, help="KIND:ID, e.g. tool:web_search")
    check.add_argument("--actor", help="the agent acting for the subject, e.g. agent:helper")
    for name in ("subject", "actor", "resource", "context"):
        check.add_argument(
            f"--{name}-attr",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help=f"{name} attribute; VALUE is JSON when it parses (true, 3), else a string",
        )
    check.add_argument("--explain", action="store_true", help="show the rule that decided")
    check.add_argument("--min-version", type=int, default=0)
    check.add_argument("--timeout", type=float, default=5.0)
    return parser


def run(argv: Sequence[str], stdout: TextIO, stderr: TextIO) -> int:
    args = _parser().parse_args(argv)
    if args.command == "test":
        return _test(args, stdout, stderr)
    if args.command == "validate":
        return _validate(args, stdout, stderr)
    return _check(args, stdout, stderr)


def _test(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    try:
        bundle = load_bundle(args.dir)
        report = run_bundle_tests(bundle, compile_bundle(bundle))
    except BundleError as exc:
        return _refused(args, exc, stdout, stderr)
    failures = report.problems()
    if args.output == "json":
        _json(
            stdout,
            {
                "policy_set": bundle.name,
                "cases": len(report.results),
                "failed": len(failures),
                "failures": [str(p) for p in failures],
            },
        )
    else:
        for problem in failures:
            print(f"FAIL {problem}", file=stdout)
        passed = len(report.results) - len(failures)
        print(f"{bundle.name}: {passed} passed, {len(failures)} failed", file=stdout)
    return EXIT_OK if report.passed else EXIT_REFUSED


def _validate(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    try:
        bundle = load_bundle(args.dir)
        engine = compile_bundle(bundle)
    except BundleError as exc:
        return _refused(args, exc, stdout, stderr)
    if args.output == "json":
        _json(stdout, {"policy_set": bundle.name, "valid": True, "rules": engine.rule_count})
    else:
        print(f"{bundle.name}: valid, {engine.rule_count} rules", file=stdout)
    return EXIT_OK


def _check(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    try:
        attrs = {name: _attributes(getattr(args, f"{name}_attr")) for name in ("subject", "actor", "resource", "context")}
    except ValueError as exc:
        print(f"policyctl: {exc}", file=stderr)
        return EXIT_REFUSED
    try:
        with SyncClient(args.server, timeout=args.timeout) as client:
            result = client.check(
                policy_set=args.policy_set,
                tenant=args.tenant,
                subject=args.subject,
                subject_attributes=attrs["subject"],
                actor=args.actor,
                actor_attributes=attrs["actor"],
                action=args.action,
                resource=args.resource,
                resource_attributes=attrs["resource"],
                context=attrs["context"],
                explain=args.explain,
                min_version=args.min_version,
            )
    except grpc.RpcError as exc:
        code = exc.code()
        print(f"policyctl: {code.name}: {exc.details()}", file=stderr)
        return EXIT_UNREACHABLE if code in _UNREACHABLE else EXIT_REFUSED
    if args.output == "json":
        _json(
            stdout,
            {
                "allowed": result.allowed,
                "policy_version": result.policy_version,
                "decision_id": result.decision_id,
                "reason": result.reason,
                "denied_party": result.denied_party,
                "matched_rules": [
                    {"rule": r.text, "file": r.file, "line": r.line} for r in result.matched_rules
                ],
            },
        )
    else:
        word = "ALLOW" if result.allowed else "DENY"
        print(f"{word}  (policy version {result.policy_version}, decision {result.decision_id})", file=stdout)
        print(f"reason: {result.reason}", file=stdout)
        for rule in result.matched_rules:
            print(f"rule:   {rule.text}    [{rule.file}:{rule.line}]", file=stdout)
    return EXIT_OK if result.allowed else EXIT_DENIED


def _attributes(pairs: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"attribute {pair!r} is not NAME=VALUE")
        try:
            values[name] = json.loads(raw)
        except json.JSONDecodeError:
            values[name] = raw
    return values


def _refused(args: argparse.Namespace, exc: BundleError, stdout: TextIO, stderr: TextIO) -> int:
    if args.output == "json":
        _json(stdout, {"valid": False, "problems": [str(p) for p in exc.problems]})
    else:
        for problem in exc.problems:
            print(f"ERROR {problem}", file=stderr)
    return EXIT_REFUSED


def _json(stream: TextIO, value: Any) -> None:
    json.dump(value, stream, indent=2, sort_keys=True)
    stream.write("\n")


def main() -> None:
    sys.exit(run(sys.argv[1:], sys.stdout, sys.stderr))
