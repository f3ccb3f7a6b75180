"""BatchCheck over a real gRPC channel against an in-process server on a free port."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import struct_pb2

from policy_engine import limits
from policy_engine.bundle import load_bundle
from policy_engine.client.admin import AdminClient, BundleFiles
from policy_engine.config import AuditSettings
from policy_engine.metrics import METRICS
from tests.support.edge import EXPLAINING_LOCAL_CALLERS
from policy_engine.testing import ServerHandle, running_server
from policy_engine.v1 import authorization_pb2, authorization_pb2_grpc, types_pb2

ROOT = Path(__file__).resolve().parents[2]
RULES = (ROOT / "policies" / "default" / "policy.csv").read_text().splitlines()


def line_of(rule: str) -> int:
    """The 1-based line of a rule in the example policy.csv."""
    return RULES.index(rule) + 1


@pytest.fixture(scope="module")
def server() -> Iterator[ServerHandle]:
    with running_server(ROOT / "policies", edge=EXPLAINING_LOCAL_CALLERS) as handle:
        yield handle


@pytest.fixture(scope="module")
def stub(server: ServerHandle) -> Iterator[authorization_pb2_grpc.AuthorizationServiceStub]:
    with grpc.insecure_channel(server.target) as channel:
        yield authorization_pb2_grpc.AuthorizationServiceStub(channel)


def struct(**values: object) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(values)
    return s


def item(resource: str, action: str = "invoke", **attributes: object) -> authorization_pb2.BatchCheckItem:
    kind, _, rid = resource.partition(":")
    return authorization_pb2.BatchCheckItem(
        action=action, resource=types_pb2.Resource(kind=kind, id=rid, attributes=struct(**attributes))
    )


def batch(items: list[authorization_pb2.BatchCheckItem], **overrides: object) -> authorization_pb2.BatchCheckRequest:
    fields: dict[str, object] = dict(
        tenant="acme", subject=types_pb2.Entity(id="bob", attributes=struct(mfa=True, clearance=2)), items=items
    )
    fields.update(overrides)
    return authorization_pb2.BatchCheckRequest(**fields)  # type: ignore[arg-type]


def check(stub, request: authorization_pb2.BatchCheckRequest, index: int) -> authorization_pb2.CheckResponse:  # type: ignore[no-untyped-def]
    """The single Check equivalent to item `index` of a batch."""
    one = request.items[index]
    return stub.Check(
        authorization_pb2.CheckRequest(
            policy_set=request.policy_set,
            tenant=request.tenant,
            subject=request.subject,
            actor=request.actor if request.HasField("actor") else None,
            action=one.action,
            resource=one.resource,
            context=one.context,
        )
    )


class TestDecisions:
    def test_results_in_order_equal_single_checks(self, stub) -> None:  # type: ignore[no-untyped-def]
        """Every item gets its own decision, in request order, equal to the Check of that item."""
        items = [
            item("tool:shell_exec"),
            item("tool:web_search"),
            item("tool:payments_transfer"),
            item("data:finance/reports", "read", classification=2),
            item("data:hr/salaries", "read", classification=3),
            item("tool:email_send"),
            item("memory:session/1", "write"),
        ]
        request = batch(items)
        response = stub.BatchCheck(request)
        assert response.policy_version == 1
        assert len(response.results) == len(items)
        assert [r.allowed for r in response.results] == [True, True, False, True, False, False, True]
        for index, result in enumerate(response.results):
            single = check(stub, request, index)
            assert (result.allowed, result.reason) == (single.allowed, single.reason)
        assert len({r.decision_id for r in response.results}) == len(items)

    def test_actor_applies_to_every_item(self, stub) -> None:  # type: ignore[no-untyped-def]
        """With an actor, each item is allowed only if both parties are; the denied party is named."""
        response = stub.BatchCheck(
            batch([item("tool:web_search"), item("tool:shell_exec")], actor=types_pb2.Entity(id="agent:helper"))
        )
        assert [r.allowed for r in response.results] == [True, False]
        assert response.results[1].denied_party == "actor"
        assert response.results[1].failure == types_pb2.FAILURE_ACTOR

    def test_explain_names_rule_file_line_and_failure(self, stub) -> None:  # type: ignore[no-untyped-def]
        """With explain, a deny-rule denial carries the rule, file and line; a failed condition says so."""
        response = stub.BatchCheck(
            batch(
                [item("tool:payments_transfer"), item("tool:shell_exec")],
                subject=types_pb2.Entity(id="bob", attributes=struct(mfa=False)),
                explain=True,
            )
        )
        deny, condition = response.results
        assert deny.failure == types_pb2.FAILURE_DENY_RULE
        assert deny.matched_rules[0].text == "p, viewer, *, tool:payments_transfer, invoke, True, deny"
        assert deny.matched_rules[0].file == "policy.csv"
        assert deny.matched_rules[0].line == line_of("p, viewer, *, tool:payments_transfer, invoke, True, deny")
        assert condition.failure == types_pb2.FAILURE_CONDITION
        assert "r.sub.mfa == True" in condition.reason
        assert condition.matched_rules[0].line == line_of("p, engineer, *, tool:shell_exec, invoke, r.sub.mfa == True, allow")

    def test_explain_no_role_and_no_matching_rule(self, stub) -> None:  # type: ignore[no-untyped-def]
        """A subject without a role in the tenant is NO_ROLE; one whose roles lack the rule NO_MATCHING_RULE."""
        stranger = stub.BatchCheck(
            batch([item("tool:web_search")], subject=types_pb2.Entity(id="mallory"), explain=True)
        )
        viewer = stub.BatchCheck(batch([item("tool:sql_query")], subject=types_pb2.Entity(id="dave"), explain=True))
        assert stranger.results[0].failure == types_pb2.FAILURE_NO_ROLE
        assert viewer.results[0].failure == types_pb2.FAILURE_NO_MATCHING_RULE
        assert "viewer" in viewer.results[0].reason

    def test_without_explain_no_rules_are_sent(self, stub) -> None:  # type: ignore[no-untyped-def]
        """Matched rules are only sent when explain is asked for."""
        response = stub.BatchCheck(batch([item("tool:payments_transfer")]))
        assert not response.results[0].matched_rules


class TestPerItemErrors:
    def test_invalid_items_get_their_own_error(self, stub) -> None:  # type: ignore[no-untyped-def]
        """Invalid items are denied with an error naming items[i] and the field; the others are decided."""
        items = [
            item("tool:web_search"),
            item("data:a/../b", "read"),
            authorization_pb2.BatchCheckItem(action="", resource=types_pb2.Resource(kind="tool", id="web_search")),
            item("tool:web*"),
            item("tool:web_search", blob="x" * (limits.MAX_STRUCT_BYTES + 1)),
            item("tool:shell_exec"),
        ]
        response = stub.BatchCheck(batch(items))
        errors = [r.error for r in response.results]
        assert errors[0] == "" and errors[5] == ""
        assert errors[1].startswith("items[1].resource.id:")
        assert errors[2].startswith("items[2].action:")
        assert errors[3].startswith("items[3].resource.id:")
        assert errors[4].startswith("items[4].resource.attributes:")
        assert [r.allowed for r in response.results] == [True, False, False, False, False, True]
        assert all(response.results[i].failure == types_pb2.FAILURE_INVALID for i in (1, 2, 3, 4))

    def test_a_required_attribute_is_required_only_of_its_kinds(self, stub) -> None:  # type: ignore[no-untyped-def]
        """schema.yaml requires `classification` of data resources: a data item without it is that
        item's error, while tools without attributes, before and after it, are decided."""
        items = [item("tool:web_search"), item("data:finance/reports", "read"), item("tool:web_search")]
        response = stub.BatchCheck(batch(items))
        assert [r.error for r in response.results] == [
            "",
            "items[1].resource.attributes.classification: is required",
            "",
        ]
        assert [r.allowed for r in response.results] == [True, False, True]

    def test_invalid_shared_part_fails_the_batch(self, stub) -> None:  # type: ignore[no-untyped-def]
        """An invalid tenant or subject, shared by every item, is INVALID_ARGUMENT for the whole batch."""
        for overrides, field in (
            ({"tenant": ""}, "tenant"),
            ({"subject": types_pb2.Entity(id="")}, "subject.id"),
            ({"subject": types_pb2.Entity(id="admin")}, "subject.id"),
            ({"actor": types_pb2.Entity(id="bad\x00")}, "actor.id"),
        ):
            with pytest.raises(grpc.RpcError) as caught:
                stub.BatchCheck(batch([item("tool:web_search")], **overrides))
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert caught.value.details().startswith(field)

    def test_subject_token_is_unimplemented(self, stub) -> None:  # type: ignore[no-untyped-def]
        """subject_token is refused as UNIMPLEMENTED, as in Check."""
        with pytest.raises(grpc.RpcError) as caught:
            stub.BatchCheck(batch([item("tool:web_search")], subject_token="eyJ..."))
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED

    def test_unknown_policy_set_is_not_found(self, stub) -> None:  # type: ignore[no-untyped-def]
        """An unknown policy set fails the batch with NOT_FOUND."""
        with pytest.raises(grpc.RpcError) as caught:
            stub.BatchCheck(batch([item("tool:web_search")], policy_set="nope"))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND

    def test_empty_batch_is_an_empty_answer(self, stub) -> None:  # type: ignore[no-untyped-def]
        """A batch with no items answers with the version and no results."""
        response = stub.BatchCheck(batch([]))
        assert response.policy_version == 1
        assert not response.results


class TestLimit:
    def test_limit_is_accepted(self, stub) -> None:  # type: ignore[no-untyped-def]
        """A batch of exactly MAX_BATCH_ITEMS items is decided, every item in order."""
        items = [item(f"tool:t{i}") if i % 2 else item("tool:web_search") for i in range(limits.MAX_BATCH_ITEMS)]
        response = stub.BatchCheck(batch(items), timeout=60)
        assert len(response.results) == limits.MAX_BATCH_ITEMS
        assert [r.allowed for r in response.results] == [i % 2 == 0 for i in range(limits.MAX_BATCH_ITEMS)]

    def test_over_limit_is_refused(self, stub) -> None:  # type: ignore[no-untyped-def]
        """One item more than the limit is INVALID_ARGUMENT naming items and the limit."""
        items = [item("tool:web_search")] * (limits.MAX_BATCH_ITEMS + 1)
        with pytest.raises(grpc.RpcError) as caught:
            stub.BatchCheck(batch(items))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.details().startswith("items:")
        assert str(limits.MAX_BATCH_ITEMS) in caught.value.details()


def test_one_version_decides_the_whole_batch() -> None:
    """While versions flip between 1 and 2, every batch is decided entirely by the version it names."""
    with running_server(ROOT / "policies") as server:
        bundle = load_bundle(ROOT / "policies" / "default")
        rules = bundle.policy_text + "\np, viewer, *, tool:calculator, invoke, True, allow\n"
        with AdminClient(server.target, token=server.admin_token) as admin:
            admin.push("default", BundleFiles(bundle.model_text, rules, dict(bundle.tests)), message="calc", author="t")
        stop = threading.Event()

        def flip() -> None:
            with AdminClient(server.target, token=server.admin_token) as admin:
                number = 2
                while not stop.is_set():
                    admin.activate("default", number, author="t", reason="flip")
                    number = 3 - number
                    stop.wait(0.05)

        flipper = threading.Thread(target=flip)
        flipper.start()
        seen = set()
        try:
            with grpc.insecure_channel(server.target) as channel:
                stub = authorization_pb2_grpc.AuthorizationServiceStub(channel)
                request = batch(
                    [item("tool:calculator"), item("tool:web_search")] * 200, subject=types_pb2.Entity(id="dave")
                )
                for attempt in range(300):
                    if attempt >= 10 and len(seen) == 2:
                        break
                    response = stub.BatchCheck(request, timeout=30)
                    seen.add(response.policy_version)
                    calculator = {r.allowed for r in response.results[0::2]}
                    assert calculator == {response.policy_version == 2}
                    assert all(r.allowed for r in response.results[1::2])
        finally:
            stop.set()
            flipper.join()
        assert seen == {1, 2}


def _decisions_counted(result: str) -> float:
    """This process's decisions metric for the default set (the test servers run in-process)."""
    return sum(
        sample.value
        for metric in METRICS.decisions.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
        and sample.labels.get("policy_set") == "default" and sample.labels.get("result") == result
    )


@pytest.mark.parametrize("logging", [True, False], ids=["decision log on", "decision log off"])
def test_batch_items_are_counted_by_result(logging: bool, tmp_path: Path) -> None:
    """The decisions metric counts every decided item of a batch by its result, with the
    decision log on or off; an invalid item is not a decision."""
    audit = AuditSettings(enabled=logging, spill_dir=tmp_path / "audit", writer="thread")
    items = [
        authorization_pb2.BatchCheckItem(action="invoke", resource=types_pb2.Resource(kind="tool", id=name))
        for name in ("web_search", "shell_exec", "web_search", "not/../valid", "sql_query")
    ]
    request = authorization_pb2.BatchCheckRequest(tenant="acme", subject=types_pb2.Entity(id="dave"), items=items)
    with running_server(ROOT / "policies", audit=audit) as handle, grpc.insecure_channel(handle.target) as channel:
        allowed_before, denied_before = _decisions_counted("allow"), _decisions_counted("deny")
        results = authorization_pb2_grpc.AuthorizationServiceStub(channel).BatchCheck(request).results
    assert [r.allowed for r in results] == [True, False, True, False, False] and results[3].error
    assert _decisions_counted("allow") - allowed_before == 2
    assert _decisions_counted("deny") - denied_before == 2
