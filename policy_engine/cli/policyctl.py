"""`policyctl`: test, push and manage policy versions, and ask for decisions.

    policyctl validate DIR                  what push would refuse (the same checks), with file and line
    policyctl test DIR                      run a policy set's tests locally (no server)
    policyctl push DIR [--set S] [-m MSG] [--activate] [--allow-dirty] [--author A]
    policyctl versions [--set S]            list versions (* marks the active one)
    policyctl show V [--set S]              a version's metadata, model and rules
    policyctl diff A B [--set S]            rules added and removed, model diff
    policyctl activate V [--reason R] [--expect-active N]
    policyctl rollback [--to N] [--reason R] [--expect-active N]
                                            one step back along the activation path, or to N
    policyctl activations [--set S]         who activated what, when, why
    policyctl export V DIR [--set S]        write a version back as files (pushes to the same sha256)
    policyctl check --tenant T --subject S --action A --resource KIND:ID [...]
    policyctl decisions [--subject S] [--actor A] [--tenant T] [--denied] [--since 1h] [--limit N]
    policyctl decisions verify              check the decision log's hash chains
    policyctl decision ID                   one logged decision, attributes decrypted
    policyctl replay --candidate V [--since 24h]   what would flip if V were activated
    policyctl release PRINCIPAL --tenant T  end a quarantine
    policyctl events                        security events (denial bursts, quarantines)
    policyctl legal-hold TENANT on|off      keep a tenant's decisions from retention

Commands that talk to the service use --server / POLICY_ENGINE_ADDR, a bearer
token from --token-file or POLICY_ENGINE_TOKEN (else, for a loopback server, the
local admin credential that `policy-engine serve` created), and TLS with --ca-file (plus
--cert-file/--key-file for mTLS) or their POLICY_ENGINE_* variables. Every
command takes --output json. Exit codes: 0 success (check: allowed), 1 denied,
2 refused (bad input, invalid bundle, failing tests, stale expectation, not
found), 3 the server is unreachable.
"""

from __future__ import annotations

import argparse
import getpass
from datetime import UTC, datetime, timedelta
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import grpc

from policy_engine.auth.callers import default_admin_token_file, read_admin_token
from policy_engine.bundle import check_bundle, inspect_bundle, load_bundle
from policy_engine.bundle.digest import bundle_digest
from policy_engine.bundle.loader import MODEL_FILE, POLICY_FILE, Bundle
from policy_engine.bundle.provenance import git_provenance
from policy_engine.bundle.roles import ROLES_FILE
from policy_engine.bundle.schema import SCHEMA_FILE
from policy_engine.cli.output import print_json, print_table
from policy_engine.client import SyncClient, TLSConfig
from policy_engine.client.admin import AdminClient, BundleFiles
from policy_engine.config import is_loopback, split_host_port
from policy_engine.errors import BundleError, Problem

__all__ = ["EXIT_DENIED", "EXIT_OK", "EXIT_REFUSED", "EXIT_UNREACHABLE", "main", "run"]

EXIT_OK = 0
EXIT_DENIED = 1
EXIT_REFUSED = 2
EXIT_UNREACHABLE = 3
DEFAULT_SERVER = "127.0.0.1:50051"
_UNREACHABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


class Refused(Exception):
    """A command refused before or without asking the server; the message says why."""


def run(argv: Sequence[str], stdout: TextIO, stderr: TextIO) -> int:
    args = _parser().parse_args(argv)
    out = _Output(args.output, stdout, stderr)
    try:
        return int(args.handler(args, out))
    except BundleError as exc:
        out.problems(exc)
        return EXIT_REFUSED
    except Refused as exc:
        out.error(str(exc))
        return EXIT_REFUSED
    except grpc.RpcError as exc:
        code = exc.code()
        out.error(f"{code.name}: {exc.details()}")
        return EXIT_UNREACHABLE if code in _UNREACHABLE else EXIT_REFUSED


class _Output:
    def __init__(self, mode: str, stdout: TextIO, stderr: TextIO) -> None:
        self.json = mode == "json"
        self.stdout = stdout
        self.stderr = stderr

    def emit(self, value: Any, text: Callable[[TextIO], None]) -> None:
        if self.json:
            print_json(self.stdout, value)
        else:
            text(self.stdout)

    def error(self, message: str) -> None:
        if self.json:
            print_json(self.stdout, {"error": message})
        print(f"policyctl: {message}", file=self.stderr)

    def problems(self, exc: BundleError) -> None:
        if self.json:
            print_json(self.stdout, {"valid": False, "problems": [str(p) for p in exc.problems]})
        for problem in exc.problems:
            print(f"ERROR {problem}", file=self.stderr)


# ---- local commands -------------------------------------------------------------------------


def _validate(args: argparse.Namespace, out: _Output) -> int:
    bundle = load_bundle(args.dir)
    checked = inspect_bundle(bundle)  # the checks push runs, tests included
    if checked.refusals or checked.engine is None or checked.report is None:
        raise BundleError(checked.refusals)
    rules, cases = checked.engine.rule_count, len(checked.report.results)
    out.emit(
        {"policy_set": bundle.name, "valid": True, "rules": rules, "cases": cases},
        lambda s: print(f"{bundle.name}: valid, {rules} rules, {cases} test cases pass", file=s),
    )
    return EXIT_OK


def _test(args: argparse.Namespace, out: _Output) -> int:
    bundle = load_bundle(args.dir)
    checked = inspect_bundle(bundle)  # the checks push runs; failing cases are listed below
    if checked.problems or checked.report is None:
        raise BundleError(checked.problems)
    report = checked.report
    failures = report.problems()

    def text(stream: TextIO) -> None:
        for problem in failures:
            print(f"FAIL {problem}", file=stream)
        passed = len(report.results) - len(failures)
        print(f"{bundle.name}: {passed} passed, {len(failures)} failed", file=stream)

    out.emit(
        {
            "policy_set": bundle.name,
            "cases": len(report.results),
            "failed": len(failures),
            "failures": [str(p) for p in failures],
        },
        text,
    )
    return EXIT_OK if report.passed else EXIT_REFUSED


# ---- admin commands -------------------------------------------------------------------------


def _push(args: argparse.Namespace, out: _Output) -> int:
    bundle = load_bundle(args.dir, name=args.policy_set or None)
    provenance = git_provenance(args.dir)
    if provenance.dirty and not args.allow_dirty:
        reason = (
            "is not inside a git work tree"
            if provenance.commit is None
            else "has uncommitted changes"
        )
        raise Refused(f"{args.dir} {reason}; commit first or pass --allow-dirty")
    check_bundle(bundle)  # refuse locally with file:line before sending anything
    with _admin(args) as admin:
        outcome = admin.push(
            bundle.name,
            _files(bundle),
            message=args.message,
            author=args.author,
            git_commit=provenance.commit,
            git_dirty=provenance.dirty,
            activate=args.activate,
            reason=args.reason,
        )

    def text(stream: TextIO) -> None:
        v = outcome.version
        verb = "pushed" if outcome.created else "unchanged, already"
        print(f"{verb} {v.policy_set} version {v.number} (sha256 {v.sha256[:12]}, {v.rule_count} rules)", file=stream)
        if outcome.activation is not None:
            print(f"activated version {outcome.activation.version}", file=stream)

    out.emit(outcome, text)
    return EXIT_OK


def _versions(args: argparse.Namespace, out: _Output) -> int:
    with _admin(args) as admin:
        versions = admin.versions(args.policy_set)
    out.emit(
        versions,
        lambda s: print_table(
            s,
            ["", "VERSION", "CREATED", "AUTHOR", "RULES", "COMMIT", "MESSAGE"],
            [
                [
                    "*" if v.active else "",
                    v.number,
                    v.created_at,
                    v.author,
                    v.rule_count,
                    (v.git_commit or "")[:10] + (" (dirty)" if v.git_dirty else ""),
                    v.message,
                ]
                for v in versions
            ],
        ),
    )
    return EXIT_OK


def _show(args: argparse.Namespace, out: _Output) -> int:
    with _admin(args) as admin:
        version, files = admin.get(args.policy_set, args.version)

    def text(stream: TextIO) -> None:
        print(f"policy set {version.policy_set} version {version.number}{' (active)' if version.active else ''}", file=stream)
        print(f"sha256   {version.sha256}", file=stream)
        print(f"author   {version.author}", file=stream)
        print(f"created  {version.created_at.isoformat()}", file=stream)
        print(f"commit   {version.git_commit or '-'}{' (dirty)' if version.git_dirty else ''}", file=stream)
        print(f"message  {version.message}", file=stream)
        print(f"rules    {version.rule_count}; tests: {', '.join(files.tests) or 'none'}", file=stream)
        for name, text in ((MODEL_FILE, files.model), (SCHEMA_FILE, files.schema), (ROLES_FILE, files.roles), (POLICY_FILE, files.policy)):
            if text:
                print(f"\n--- {name} ---", file=stream)
                print(text, file=stream, end="" if text.endswith("\n") else "\n")

    out.emit({"version": version, "content": files}, text)
    return EXIT_OK


def _diff(args: argparse.Namespace, out: _Output) -> int:
    with _admin(args) as admin:
        diff = admin.diff(args.policy_set, args.from_version, args.to_version)

    def text(stream: TextIO) -> None:
        for rule, line in diff.removed:
            print(f"- {rule}    [v{args.from_version} {POLICY_FILE}:{line}]", file=stream)
        for rule, line in diff.added:
            print(f"+ {rule}    [v{args.to_version} {POLICY_FILE}:{line}]", file=stream)
        if diff.model_diff:
            print(diff.model_diff, file=stream, end="")
        if diff.roles_diff:
            print(diff.roles_diff, file=stream, end="")
        for path in diff.tests_changed:
            print(f"~ {path}", file=stream)
        if not (diff.added or diff.removed or diff.model_diff or diff.roles_diff or diff.tests_changed):
            print("no differences", file=stream)

    out.emit(diff, text)
    return EXIT_OK


def _activate(args: argparse.Namespace, out: _Output) -> int:
    with _admin(args) as admin:
        record = admin.activate(
            args.policy_set,
            args.version,
            author=args.author,
            reason=args.reason,
            expected_active=args.expect_active,
        )
    out.emit(record, lambda s: _print_activation(s, record))
    return EXIT_OK


def _rollback(args: argparse.Namespace, out: _Output) -> int:
    if args.version is not None and args.to is not None and args.version != args.to:
        raise Refused(f"rollback: version {args.version} and --to {args.to} disagree; give one")
    with _admin(args) as admin:
        record = admin.rollback(
            args.policy_set,
            author=args.author,
            reason=args.reason,
            to_number=args.to if args.to is not None else args.version,
            expected_active=args.expect_active,
        )
    out.emit(record, lambda s: _print_activation(s, record))
    return EXIT_OK


def _activations(args: argparse.Namespace, out: _Output) -> int:
    with _admin(args) as admin:
        records = admin.activations(args.policy_set, limit=args.limit)
    out.emit(
        records,
        lambda s: print_table(
            s,
            ["ID", "WHEN", "SET", "FROM", "TO", "BY", "REASON"],
            [
                [r.id, r.created_at, r.policy_set, r.previous_version, r.version, r.actor, r.reason]
                for r in records
            ],
        ),
    )
    return EXIT_OK


def _export(args: argparse.Namespace, out: _Output) -> int:
    with _admin(args) as admin:
        version, files = admin.get(args.policy_set, args.version)
    target = Path(args.dir)
    bundle = Bundle(version.policy_set, files.model, files.policy, files.tests, files.schema, roles_text=files.roles)
    if bundle_digest(bundle) != version.sha256:
        raise Refused(f"version {version.number} content does not match its sha256")
    target.mkdir(parents=True, exist_ok=True)
    (target / MODEL_FILE).write_text(files.model, encoding="utf-8")
    (target / POLICY_FILE).write_text(files.policy, encoding="utf-8")
    if files.schema:
        (target / SCHEMA_FILE).write_text(files.schema, encoding="utf-8")
    if files.roles:
        (target / ROLES_FILE).write_text(files.roles, encoding="utf-8")
    for path, text in files.tests.items():
        (target / path).parent.mkdir(parents=True, exist_ok=True)
        (target / path).write_text(text, encoding="utf-8")
    out.emit(
        {"policy_set": version.policy_set, "version": version.number, "dir": str(target), "sha256": version.sha256},
        lambda s: print(f"exported {version.policy_set} version {version.number} to {target}", file=s),
    )
    return EXIT_OK


def _print_activation(stream: TextIO, record: Any) -> None:
    before = record.previous_version if record.previous_version is not None else "none"
    print(
        f"{record.policy_set}: version {record.version} is active (was {before}); "
        f"by {record.actor}: {record.reason}",
        file=stream,
    )


def _admin(args: argparse.Namespace) -> AdminClient:
    return AdminClient(args.server, timeout=args.timeout, **_credentials(args))


def _credentials(args: argparse.Namespace) -> dict[str, Any]:
    """TLS and bearer token for the channel, from flags or the environment; never printed."""
    token = os.environ.get("POLICY_ENGINE_TOKEN")
    if args.token_file:
        try:
            token = Path(args.token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise Refused(f"--token-file: {exc.strerror}") from exc
    if not token:
        token = _local_admin_token(args.server)
    tls = None
    if args.ca_file or args.cert_file:
        try:
            tls = TLSConfig.from_files(args.ca_file, args.cert_file, args.key_file, args.server_name)
        except OSError as exc:
            raise Refused(f"TLS files: {exc.strerror}: {exc.filename}") from exc
    return {"tls": tls, "token": token or None}


def _local_admin_token(server: str) -> str | None:
    """The local admin credential of a server on this host (the default start), if this user
    can read one; never sent anywhere but a loopback address."""
    try:
        host, _ = split_host_port(server)
    except ValueError:
        return None
    if not is_loopback(host):
        return None
    return read_admin_token(default_admin_token_file())


def _files(bundle: Bundle) -> BundleFiles:
    return BundleFiles(bundle.model_text, bundle.policy_text, dict(bundle.tests), bundle.schema_text, bundle.roles_text)


# ---- the decision log -----------------------------------------------------------------------


def _decisions(args: argparse.Namespace, out: _Output) -> int:
    with _admin(args) as admin:
        if args.what == "verify":
            ok, rows, report = admin.verify_decisions()

            crashes = sum(line.startswith("  crash gap:") for line in report)

            def lines(stream: TextIO) -> None:
                for line in report:
                    print(line, file=stream)
                explained = f", {crashes} crash gap{'s' if crashes > 1 else ''} (see above)" if crashes else ""
                print(f"{'ok' if ok else 'TAMPERED OR INCOMPLETE'}: {rows} rows checked{explained}", file=stream)

            out.emit({"ok": ok, "rows_checked": rows, "report": report}, lines)
            return EXIT_OK if ok else EXIT_REFUSED
        decisions = admin.decisions(
            subject=args.subject,
            actor=args.actor,
            tenant=args.tenant,
            denied_only=args.denied,
            since=_since(args.since),
            limit=args.limit,
        )
    out.emit(
        decisions,
        lambda s: print_table(
            s,
            ["WHEN", "DECISION", "TENANT", "SUBJECT", "ACTOR", "ACTION", "RESOURCE", "RESULT", "VERSION", "REASON"],
            [
                [
                    d.decided_at, d.decision_id, d.tenant, d.subject, d.actor or "-", d.action, d.resource,
                    "ALLOW" if d.allowed else "DENY", f"{d.policy_set}@{d.policy_version}", d.reason,
                ]
                for d in decisions
            ],
        ),
    )
    return EXIT_OK


def _decision(args: argparse.Namespace, out: _Output) -> int:
    with _admin(args) as admin:
        decision, attributes, hashed = admin.decision(args.decision_id)

    def text(stream: TextIO) -> None:
        for name, value in (
            ("decision", decision.decision_id),
            ("when", decision.decided_at.isoformat()),
            ("result", "ALLOW" if decision.allowed else "DENY"),
            ("policy", f"{decision.policy_set} version {decision.policy_version}"),
            ("tenant", decision.tenant),
            ("subject", decision.subject),
            ("actor", decision.actor or "-"),
            ("caller", decision.caller),
            ("action", f"{decision.action} {decision.resource}"),
            ("rule", decision.rule or "-"),
            ("reason", decision.reason),
            ("request", decision.request_id or "-"),
            ("replica", f"{decision.replica_id} #{decision.seq}"),
            ("attributes", attributes or "(encrypted with a key this server does not hold)"),
        ):
            print(f"{name:<10} {value}", file=stream)
        for path, digest in hashed.items():
            print(f"{'hashed':<10} {path} = {digest}", file=stream)

    out.emit(
        {"decision": decision, "attributes": json.loads(attributes) if attributes else None, "hashed": hashed},
        text,
    )
    return EXIT_OK


def _replay(args: argparse.Namespace, out: _Output) -> int:
    with _admin(args) as admin:
        result = admin.replay(args.policy_set, args.candidate, since=_since(args.since), limit=args.limit)

    def text(stream: TextIO) -> None:
        print(
            f"replayed {result.replayed} decisions under {args.policy_set} version {args.candidate}: "
            f"{result.unchanged} unchanged, {result.allow_to_deny} allow->deny, "
            f"{result.deny_to_allow} deny->allow, {result.skipped} skipped",
            file=stream,
        )
        for rule, count in sorted(result.rules_responsible.items(), key=lambda kv: -kv[1]):
            print(f"  {count:>6}  {rule}", file=stream)
        for decision, now_allowed, _rule, reason in result.samples:
            change = "deny->allow" if now_allowed else "allow->deny"
            print(
                f"  {change}  {decision.decision_id}  {decision.subject} {decision.action} "
                f"{decision.resource}: {reason}",
                file=stream,
            )

    out.emit(result, text)
    return EXIT_OK


def _release(args: argparse.Namespace, out: _Output) -> int:
    with _admin(args) as admin:
        released = admin.release(args.tenant, args.principal, args.reason)
    out.emit(
        {"released": released},
        lambda s: print(
            f"released {args.principal} in {args.tenant}" if released else f"{args.principal} was not quarantined",
            file=s,
        ),
    )
    return EXIT_OK if released else EXIT_REFUSED


def _events(args: argparse.Namespace, out: _Output) -> int:
    with _admin(args) as admin:
        events = admin.security_events(args.limit)
    out.emit(
        events,
        lambda s: print_table(
            s,
            ["ID", "WHEN", "TENANT", "KIND", "PRINCIPAL", "DETAIL"],
            [[e["id"], e["created_at"], e["tenant"], e["kind"], e["principal"], e["detail"]] for e in events],
        ),
    )
    return EXIT_OK


def _legal_hold(args: argparse.Namespace, out: _Output) -> int:
    with _admin(args) as admin:
        admin.set_legal_hold(args.tenant, args.state == "on")
    out.emit(
        {"tenant": args.tenant, "legal_hold": args.state == "on"},
        lambda s: print(f"legal hold {args.state} for {args.tenant}", file=s),
    )
    return EXIT_OK


_DURATION = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _since(text: str | None) -> datetime | None:
    """'90s', '30m', '1h', '7d' ago, or an ISO timestamp."""
    if not text:
        return None
    unit = text[-1:]
    if unit in _DURATION and text[:-1].isdigit():
        return datetime.now(UTC) - timedelta(seconds=int(text[:-1]) * _DURATION[unit])
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise Refused(f"--since {text!r}: use 30m, 1h, 7d or an ISO timestamp") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# ---- check ----------------------------------------------------------------------------------


def _check(args: argparse.Namespace, out: _Output) -> int:
    try:
        attrs = {
            name: _attributes(getattr(args, f"{name}_attr"))
            for name in ("subject", "actor", "resource", "context")
        }
    except ValueError as exc:
        raise Refused(str(exc)) from exc
    with SyncClient(args.server, timeout=args.timeout, **_credentials(args)) as client:
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

    def text(stream: TextIO) -> None:
        word = "ALLOW" if result.allowed else "DENY"
        print(f"{word}  (policy version {result.policy_version}, decision {result.decision_id})", file=stream)
        print(f"reason: {result.reason}", file=stream)
        for rule in result.matched_rules:
            print(f"rule:   {rule.text}    [{rule.file}:{rule.line}]", file=stream)

    out.emit(
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
        text,
    )
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


# ---- arguments ------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="policyctl",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 2)[-1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--output", choices=("text", "json"), default="text")
    remote = argparse.ArgumentParser(add_help=False, parents=[common])
    remote.add_argument(
        "--server",
        default=os.environ.get("POLICY_ENGINE_ADDR", DEFAULT_SERVER),
        help=f"host:port of the service (POLICY_ENGINE_ADDR, default {DEFAULT_SERVER})",
    )
    remote.add_argument("--timeout", type=float, default=30.0, help="seconds per call")
    env = os.environ.get
    remote.add_argument(
        "--token-file",
        default=env("POLICY_ENGINE_TOKEN_FILE"),
        help="file holding the bearer token (else POLICY_ENGINE_TOKEN)",
    )
    remote.add_argument("--ca-file", default=env("POLICY_ENGINE_CA_FILE"), help="CA bundle: use TLS")
    remote.add_argument("--cert-file", default=env("POLICY_ENGINE_CERT_FILE"), help="client certificate (mTLS)")
    remote.add_argument("--key-file", default=env("POLICY_ENGINE_KEY_FILE"), help="client key (mTLS)")
    remote.add_argument("--server-name", default=None, help="TLS name to expect if not the host")
    named = argparse.ArgumentParser(add_help=False, parents=[remote])
    named.add_argument("--set", dest="policy_set", default="default", help="policy set (default: default)")
    acting = argparse.ArgumentParser(add_help=False, parents=[named])
    acting.add_argument(
        "--author",
        default=getpass.getuser(),
        help="who claims to do this (default: the OS user); the server records the authenticated caller",
    )
    acting.add_argument("--reason", default="", help="why, recorded with the activation")

    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, handler: Callable[..., int], parents: list, help: str) -> argparse.ArgumentParser:  # noqa: A002
        sub = commands.add_parser(name, parents=parents, help=help)
        sub.set_defaults(handler=handler)
        return sub

    command("validate", _validate, [common], "report what push would refuse, with file and line").add_argument("dir")
    command("test", _test, [common], "run a policy set's tests locally").add_argument("dir")

    push = command("push", _push, [remote], "push a policy folder as a new version")
    push.add_argument("dir")
    push.add_argument("--set", dest="policy_set", default="", help="policy set (default: the folder name)")
    push.add_argument("-m", "--message", default="", help="what changed and why")
    push.add_argument("--author", default=getpass.getuser(), help="who pushes (default: the OS user)")
    push.add_argument("--activate", action="store_true", help="also activate it, in one transaction")
    push.add_argument("--reason", default="", help="activation reason (default: the message)")
    push.add_argument("--allow-dirty", action="store_true", help="push uncommitted changes")

    command("versions", _versions, [named], "list the versions of a policy set")
    show = command("show", _show, [named], "show a version")
    show.add_argument("version", type=int)
    diff = command("diff", _diff, [named], "compare two versions")
    diff.add_argument("from_version", type=int)
    diff.add_argument("to_version", type=int)
    activate = command("activate", _activate, [acting], "make a version the active one")
    activate.add_argument("version", type=int)
    activate.add_argument(
        "--expect-active", type=int, default=None, help="refuse unless this version is active now"
    )
    rollback = command(
        "rollback", _rollback, [acting], "walk back one version along the activation path (or to V)"
    )
    rollback.add_argument("version", type=int, nargs="?", default=None, help="the target (as --to)")
    rollback.add_argument("--to", type=int, default=None, metavar="N", help="roll back to version N")
    rollback.add_argument(
        "--expect-active", type=int, default=None, help="refuse unless this version is active now"
    )
    activations = command("activations", _activations, [remote], "list activation events")
    activations.add_argument("--set", dest="policy_set", default="", help="only this policy set")
    activations.add_argument("--limit", type=int, default=50)
    export = command("export", _export, [named], "write a version back as files")
    export.add_argument("version", type=int)
    export.add_argument("dir")

    decisions = command("decisions", _decisions, [remote], "query (or verify) the decision log")
    decisions.add_argument("what", nargs="?", choices=["verify"], help="verify the hash chains")
    decisions.add_argument("--subject", default="")
    decisions.add_argument("--actor", default="")
    decisions.add_argument("--tenant", default="")
    decisions.add_argument("--denied", action="store_true", help="only denials")
    decisions.add_argument("--since", help="30m, 1h, 7d or an ISO timestamp")
    decisions.add_argument("--limit", type=int, default=50)
    decision = command("decision", _decision, [remote], "show one logged decision")
    decision.add_argument("decision_id")
    replay = command("replay", _replay, [named], "re-decide logged requests under a candidate version")
    replay.add_argument("--candidate", type=int, required=True)
    replay.add_argument("--since", help="30m, 1h, 7d or an ISO timestamp")
    replay.add_argument("--limit", type=int, default=10_000)
    release = command("release", _release, [remote], "end a quarantine")
    release.add_argument("principal")
    release.add_argument("--tenant", required=True)
    release.add_argument("--reason", default="")
    events = command("events", _events, [remote], "list security events")
    events.add_argument("--limit", type=int, default=50)
    hold = command("legal-hold", _legal_hold, [remote], "keep a tenant's decisions from retention")
    hold.add_argument("tenant")
    hold.add_argument("state", choices=["on", "off"])

    check = command("check", _check, [remote], "ask the service for a decision")
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
    return parser


def main() -> None:
    try:
        code = run(sys.argv[1:], sys.stdout, sys.stderr)
        sys.stdout.flush()
    except BrokenPipeError:
        # Whoever read the output stopped early (`policyctl decisions | head`): end quietly, as a
        # program killed by SIGPIPE would, instead of a traceback. Python's flush at exit must
        # not fail again on the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(128 + signal.SIGPIPE)
    sys.exit(code)
