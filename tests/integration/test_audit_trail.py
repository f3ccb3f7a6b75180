"""The audit trail through a real server: every decision logged, inspected, replayed; probing agents quarantined."""

from __future__ import annotations

import io
import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from policy_engine.bundle import load_bundle
from policy_engine.cli import policyctl
from policy_engine.client import CheckItem, Resource, SyncClient
from policy_engine.client.admin import AdminClient, BundleFiles
from policy_engine.config import ThreatSettings
from policy_engine.metrics import METRICS
from policy_engine.store import open_database
from policy_engine.store.audit_tables import quarantine
from policy_engine.testing import ServerHandle, running_server

ROOT = Path(__file__).resolve().parents[2]


def eventually(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def ctl(server: ServerHandle, *args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    remote = ["--server", server.target, "--token-file", str(server.admin_token_file)]
    code = policyctl.run([args[0], *remote, *args[1:]], out, err)
    return code, out.getvalue() + err.getvalue()


@pytest.fixture
def server() -> Iterator[ServerHandle]:
    threats = ThreatSettings(tenants={"acme": (3, 60.0, 300.0)})
    with running_server(ROOT / "policies", threats=threats) as handle:
        yield handle


def logged(server: ServerHandle, **filters: object) -> list:  # type: ignore[type-arg]
    with AdminClient(server.target, token=server.admin_token) as admin:
        return admin.decisions(limit=1000, **filters)  # type: ignore[arg-type]


class TestDecisionLog:
    def test_every_decision_is_logged_and_inspectable(self, server: ServerHandle) -> None:
        """Checks and batch items are each in the log once, with caller, version, rule and decrypted attributes."""
        with SyncClient(server.target) as client:
            first = client.check(tenant="acme", subject="carol", action="read", resource="data:finance/q1",
                                 subject_attributes={"clearance": 2}, resource_attributes={"classification": 1},
                                 request_id="req-1")
            client.check(tenant="acme", subject="dave", action="invoke", resource="tool:sql_query")
        eventually(lambda: len(logged(server)) >= 2)
        decisions = {d.decision_id: d for d in logged(server)}
        assert first.decision_id in decisions
        entry = decisions[first.decision_id]
        assert (entry.subject, entry.resource, entry.allowed, entry.policy_version) == ("carol", "data:finance/q1", True, 1)
        assert entry.rule.startswith("p, analyst")
        code, text = ctl(server, "decision", first.decision_id, "--output", "json")
        assert code == 0, text
        shown = json.loads(text)
        assert shown["attributes"]["subject"] == {"clearance": 2}
        assert shown["decision"]["request_id"] == "req-1"

    def test_a_repeated_check_is_logged_as_the_first_one_was(self, server: ServerHandle) -> None:
        """A Check of names only answered from what the server remembers is logged with the same
        fields and attributes as the first one; only its id, time, latency and place in the
        chain are its own."""
        ids: dict[str, list[str]] = {}
        with SyncClient(server.target) as client:
            for tool in ("sql_query", "shell_exec"):
                for n in range(3):
                    ids.setdefault(tool, []).append(client.check(
                        tenant="acme", subject="carol", action="invoke", resource=f"tool:{tool}", request_id=f"q-{tool}",
                    ).decision_id)
        eventually(lambda: len(logged(server, subject="carol")) >= 6)
        entries = {d.decision_id: d for d in logged(server, subject="carol")}
        own = ("decision_id", "decided_at", "latency_us", "seq")
        with AdminClient(server.target, token=server.admin_token) as admin:
            for tool, decided in ids.items():
                first, *repeats = [entries[decision_id] for decision_id in decided]
                assert first.allowed is (tool == "sql_query")
                stored = [admin.decision(decision_id)[1:] for decision_id in decided]
                for repeat, attributes in zip(repeats, stored[1:]):
                    assert {k: v for k, v in vars(repeat).items() if k not in own} == {
                        k: v for k, v in vars(first).items() if k not in own}
                    assert attributes == stored[0]
        code, text = ctl(server, "decisions", "verify")
        assert code == 0, text

    def test_batch_and_filter_decisions_are_logged_one_by_one(self, server: ServerHandle) -> None:
        """Each item of a BatchCheck reads back by its own decision id, with its own resource,
        attributes, context and request id; FilterAllowed's candidates are each logged too, and
        the chain verifies."""
        items = [
            CheckItem("read", Resource("data", "finance/q1", {"classification": 1}), {"turn": 1}, "req-a"),
            CheckItem("invoke", "tool:web_search", request_id="req-b"),
            CheckItem("read", Resource("data", "finance/q2", {"classification": 3}), {"turn": 3}),
        ]
        with SyncClient(server.target) as client:
            batch = client.batch_check(items, tenant="acme", subject="carol", subject_attributes={"clearance": 2})
            client.filter_allowed(["tool:web_search", "tool:sql_query", "tool:shell_exec"], tenant="acme",
                                  subject="erin", action="invoke", context={"channel": "chat"})
        eventually(lambda: len(logged(server, subject="erin")) == 3)
        assert [d.resource for d in reversed(logged(server, subject="erin"))] == [
            "tool:web_search", "tool:sql_query", "tool:shell_exec"]
        for item, result in zip(items, batch.results, strict=True):
            code, text = ctl(server, "decision", result.decision_id, "--output", "json")
            assert code == 0, text
            shown = json.loads(text)
            resource = Resource.parse(item.resource)
            assert shown["decision"]["resource"] == f"{resource.kind}:{resource.id}"
            assert shown["decision"]["allowed"] is result.allowed
            assert shown["decision"]["request_id"] == item.request_id
            assert shown["attributes"]["subject"] == {"clearance": 2}
            assert shown["attributes"]["resource"] == dict(resource.attributes)
            assert shown["attributes"]["context"] == dict(item.context or {})
        code, text = ctl(server, "decisions", "verify")
        assert code == 0 and "PROBLEM" not in text, text

    def test_filter_candidates_without_attributes_read_back_one_by_one(self, server: ServerHandle) -> None:
        """Candidates with no attributes of their own (the decision log keeps them as PlainItems)
        each read back by id with their own outcome, the subject's attributes and empty own ones."""
        with SyncClient(server.target) as client:
            result = client.filter_allowed(["tool:web_search", "tool:shell_exec", "tool:sql_query"], tenant="acme",
                                           subject="dave", subject_attributes={"clearance": 1}, action="invoke")
        eventually(lambda: len(logged(server, subject="dave")) == 3)
        allowed = {f"{r.kind}:{r.id}" for r in result.allowed}
        for decision in logged(server, subject="dave"):
            code, text = ctl(server, "decision", decision.decision_id, "--output", "json")
            assert code == 0, text
            shown = json.loads(text)
            assert shown["decision"]["allowed"] is (decision.resource in allowed)
            assert shown["attributes"] == {"subject": {"clearance": 1}, "actor": {}, "resource": {}, "context": {}}
        assert allowed == {"tool:web_search"}
        code, text = ctl(server, "decisions", "verify")
        assert code == 0 and "PROBLEM" not in text, text

    def test_filters_and_verify(self, server: ServerHandle) -> None:
        """decisions --denied lists only denials; verify reports intact chains."""
        with SyncClient(server.target) as client:
            client.check(tenant="acme", subject="dave", action="invoke", resource="tool:web_search")
            client.check(tenant="acme", subject="dave", action="invoke", resource="tool:shell_exec")
        eventually(lambda: len(logged(server)) >= 2)
        code, text = ctl(server, "decisions", "--denied", "--subject", "dave", "--output", "json")
        rows = json.loads(text)
        assert code == 0 and rows and all(not r["allowed"] for r in rows)
        code, text = ctl(server, "decisions", "verify")
        assert code == 0 and "ok:" in text

    def test_replay_counts_flips_of_a_candidate(self, server: ServerHandle) -> None:
        """Replaying a candidate that drops analysts' SQL tool flips exactly the analyst and engineer allows."""
        with SyncClient(server.target) as client:
            for subject in ("carol", "bob"):
                client.check(tenant="acme", subject=subject, action="invoke", resource="tool:sql_query")
            # alice keeps SQL through the admin rule for every tool (with MFA): unchanged
            client.check(tenant="acme", subject="alice", subject_attributes={"mfa": True}, action="invoke", resource="tool:sql_query")
            client.check(tenant="acme", subject="dave", action="invoke", resource="tool:sql_query")
            client.check(tenant="acme", subject="dave", action="invoke", resource="tool:web_search")
        eventually(lambda: len(logged(server)) >= 5)
        bundle = load_bundle(ROOT / "policies" / "default")
        rules = bundle.policy_text.replace("p, analyst, *, tool:sql_query, invoke, True, allow\n", "")
        tests = {k: "\n".join(l for l in v.splitlines() if "sql_query, expect: allow" not in l) + "\n" for k, v in bundle.tests.items()}
        with AdminClient(server.target, token=server.admin_token) as admin:
            admin.push("default", BundleFiles(bundle.model_text, rules, tests, bundle.schema_text), message="no sql", author="t")
            result = admin.replay("default", 2)
        assert (result.allow_to_deny, result.deny_to_allow) == (2, 0)
        assert result.unchanged == result.replayed - 2
        assert result.rules_responsible == {"(no rule matched)": 2}
        assert {sample[0].subject for sample in result.samples} == {"carol", "bob"}


class TestThreats:
    def test_probing_agent_is_quarantined_then_released(self, server: ServerHandle) -> None:
        """An agent denied 4 times in a row for one user is quarantined for that user (even allowed
        actions deny) until released; it keeps serving other users meanwhile."""
        with SyncClient(server.target) as client:
            def helper(tool: str):  # type: ignore[no-untyped-def]
                return client.check(tenant="acme", subject="alice", subject_attributes={"mfa": True},
                                    actor="agent:helper", action="invoke", resource=f"tool:{tool}")

            assert helper("web_search").allowed
            for tool in ("shell_exec", "sql_query", "email_send", "code_interpreter"):
                assert not helper(tool).allowed
            blocked = helper("web_search")
            assert not blocked.allowed
            assert "quarantined" in blocked.reason
            assert client.check(tenant="acme", subject="dave", actor="agent:helper", action="invoke",
                                resource="tool:web_search").allowed
            pair = "agent:helper?subject=alice"
            eventually(lambda: any(e["principal"] == pair for e in AdminClient(server.target, token=server.admin_token).security_events()))
            code, text = ctl(server, "release", pair, "--tenant", "acme", "--reason", "investigated")
            assert code == 0, text
            eventually(lambda: helper("web_search").allowed, timeout=10)

    def test_repeated_plain_checks_still_count_and_obey_a_quarantine(self, server: ServerHandle) -> None:
        """A Check repeated with nothing but names is answered from what the server remembers,
        yet every denial still counts (more than 3 make a security event), and a quarantine of the subject
        denies even the repeat of an allowed Check until it is released."""
        with SyncClient(server.target) as client:
            def dave(tool: str):  # type: ignore[no-untyped-def]
                return client.check(tenant="acme", subject="dave", action="invoke", resource=f"tool:{tool}")

            assert dave("web_search").allowed and dave("web_search").allowed
            for _ in range(4):
                assert not dave("shell_exec").allowed
            eventually(lambda: any(e["principal"] == "dave" for e in AdminClient(server.target, token=server.admin_token).security_events()))
            database = open_database(server.db_url)
            quarantine(database, "acme", "dave", datetime.now(UTC) + timedelta(hours=1), "test")
            database.dispose()
            eventually(lambda: "quarantined" in dave("web_search").reason, timeout=10)
            code, text = ctl(server, "release", "dave", "--tenant", "acme", "--reason", "checked")
            assert code == 0, text
            eventually(lambda: dave("web_search").allowed, timeout=10)
        eventually(lambda: [d.resource for d in logged(server, subject="dave", denied_only=True)].count("tool:shell_exec") == 4)

def test_metrics_endpoint_counts_decisions(tmp_path: Path) -> None:
    """With a metrics port, /metrics reports decisions by policy set and result."""
    from prometheus_client import start_http_server

    server, thread = start_http_server(0, addr="127.0.0.1", registry=METRICS.registry)
    try:
        with running_server(ROOT / "policies") as pe, SyncClient(pe.target) as client:
            client.check(tenant="acme", subject="dave", action="invoke", resource="tool:web_search")
        body = urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/metrics", timeout=5).read().decode()
    finally:
        server.shutdown()
    assert 'policy_engine_decisions_total{policy_set="default",result="allow"}' in body
    assert "policy_engine_decision_seconds_bucket" in body
    assert 'policy_engine_active_version{policy_set="default"} 1.0' in body
