"""Values that mean the same thing are the same value: the attacks of issue 22 (items 4 and 5)
replayed through a real gRPC server (Check, BatchCheck, FilterAllowed, ListAllowed, the SDK's
filter_tools), over classes of spellings rather than single examples."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import struct_pb2

from policy_engine.client import SyncClient
from policy_engine.testing import ServerHandle, running_server
from policy_engine.v1 import authorization_pb2, authorization_pb2_grpc, types_pb2
from tests.integration.test_edge_security import FACTORY, bearer, security, user_token

ROOT = Path(__file__).resolve().parents[2]

TOOLS_MODEL = """\
[request_definition]
r = sub, dom, obj, act

[policy_definition]
p = sub, dom, obj, act, eft

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = g(r.sub, p.sub, r.dom) && keyMatch(r.dom, p.dom) && keyMatch(r.obj, p.obj) && r.act == p.act
"""
# MCP-style tool names, written in the rules in whatever case their servers use.
TOOLS_RULES = """\
g, alice, user, acme
g, carol, power, acme
g, carol, user, acme
p, user, acme, tool:getWeather, invoke, allow
p, user, acme, tool:searchDocs, invoke, allow
p, power, acme, tool:*, invoke, allow
p, user, *, tool:web_search, invoke, deny
p, user, *, tool:payments_transfer, invoke, deny
p, user, *, tool:deleteRepo, invoke, deny
p, user, *, tool:getweather_admin, invoke, deny
p, user, *, tool:copy, invoke, deny
"""
TOOLS_TESTS = """\
tests:
  - {tenant: acme, subject: {id: alice}, action: invoke, resource: {kind: tool, id: getWeather}, expect: allow}
  - {tenant: acme, subject: {id: alice}, action: invoke, resource: {kind: tool, id: GETWEATHER}, expect: allow}
  - {tenant: acme, subject: {id: carol}, action: invoke, resource: {kind: tool, id: Web_Search}, expect: deny}
  - {tenant: acme, subject: {id: Carol}, action: invoke, resource: {kind: tool, id: DeleteRepo}, expect: deny}
  - {tenant: acme, subject: {id: carol}, action: invoke, resource: {kind: tool, id: anything_else}, expect: allow}
"""

NET_MODEL = """\
[request_definition]
r = sub, obj, act, ctx

[policy_definition]
p = sub, obj, act, net, eft

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = r.sub == p.sub && keyMatch(r.obj, p.obj) && r.act == p.act && ipMatch(r.ctx.ip, p.net)
"""
NET_RULES = """\
p, alice, tool:*, invoke, 0.0.0.0/0, allow
p, alice, tool:*, invoke, ::/0, allow
p, alice, tool:*, invoke, 10.0.0.0/8, deny
p, alice, tool:*, invoke, fe80::/10, deny
p, alice, tool:*, invoke, 2001:db8::/32, deny
p, alice, tool:*, invoke, ::ffff:192.168.0.0/112, deny
"""
NET_PEER_MODEL = NET_MODEL.replace("r.ctx.ip", "r.ctx.peer")
NET_PEER_SCHEMA = "context:\n  peer: {type: ip}\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    root = tmp_path_factory.mktemp("policies")
    sets = {
        "tools": (TOOLS_MODEL, TOOLS_RULES, "", TOOLS_TESTS),
        "exact": (TOOLS_MODEL, TOOLS_RULES, "ids: {compare: exact}\n", ""),
        "net": (NET_MODEL, NET_RULES, "", ""),
        "peer": (NET_PEER_MODEL, NET_RULES, NET_PEER_SCHEMA, ""),
    }
    for name, (model, rules, schema, tests) in sets.items():
        folder = root / name
        (folder / "tests").mkdir(parents=True)
        (folder / "model.conf").write_text(model)
        (folder / "policy.csv").write_text(rules)
        if schema:
            (folder / "schema.yaml").write_text(schema)
        if tests:
            (folder / "tests" / "tools_test.yaml").write_text(tests)
    with running_server(root) as handle:
        yield handle


@pytest.fixture(scope="module")
def stub(server: ServerHandle) -> Iterator[authorization_pb2_grpc.AuthorizationServiceStub]:
    with grpc.insecure_channel(server.target) as channel:
        yield authorization_pb2_grpc.AuthorizationServiceStub(channel)


def tool(name: str, kind: str = "tool") -> types_pb2.Resource:
    return types_pb2.Resource(kind=kind, id=name)


def check(stub, name: str, *, subject: str = "carol", policy_set: str = "tools", **extra) -> authorization_pb2.CheckResponse:  # type: ignore[no-untyped-def]
    return stub.Check(
        authorization_pb2.CheckRequest(
            policy_set=policy_set, tenant=extra.pop("tenant", "acme"), subject=types_pb2.Entity(id=subject),
            action=extra.pop("action", "invoke"), resource=extra.pop("resource", tool(name)), **extra,
        )
    )


def invalid_field(call, *args, **kwargs) -> str:  # type: ignore[no-untyped-def]
    """The field an INVALID_ARGUMENT names (its details start with it)."""
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, **kwargs)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    return caught.value.details().split(":", 1)[0]


def case_variants(name: str) -> list[str]:
    """Spellings of `name` that differ only in case."""
    variants = {name.upper(), name.title(), name.swapcase(), name[0].upper() + name[1:]}
    variants.add("".join(c.upper() if i % 2 else c for i, c in enumerate(name)))
    return sorted(variants - {name})


# Look-alikes of Latin letters in other scripts (Cyrillic, Greek, Armenian, Cherokee).
HOMOGLYPHS = {
    "a": ["\u0430", "\u03b1"], "e": ["\u0435"], "o": ["\u043e", "\u03bf", "\u0585"],
    "p": ["\u0440", "\u03c1"], "s": ["\u0455"], "c": ["\u0441"], "y": ["\u0443"], "x": ["\u0445"],
    "n": ["\u0578"], "i": ["\u0456"], "r": ["\u0433"], "t": ["\u03c4"], "m": ["\u043c"],
}
INVISIBLE = [
    "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u180e", "\u202e", "\u2066",
    "\U000e0061", "\u034f", "\ufe0f", "\u3164", "\u115f",
]


def confusable_variants(name: str) -> list[str]:
    """Spellings of `name` that render (nearly) alike: one letter from another script, an
    invisible character inside, or a compatibility form (fullwidth, mathematical)."""
    variants = []
    for index, char in enumerate(name):
        for lookalike in HOMOGLYPHS.get(char, []):
            variants.append(name[:index] + lookalike + name[index + 1 :])
    for index, invisible in enumerate(INVISIBLE):
        at = 1 + index % (len(name) - 1)
        variants.append(name[:at] + invisible + name[at:])
    variants.append(chr(0xFF41 + ord(name[0]) - ord("a")) + name[1:])  # fullwidth first letter
    variants.append("".join(chr(0xFF41 + ord(c) - ord("a")) if c.isalpha() else c for c in name))
    variants.append(name[:-1] + unicodedata.lookup(f"MATHEMATICAL BOLD SMALL {name[-1].upper()}"))
    variants.append(name.replace("_", "\uff3f"))  # fullwidth low line
    return variants




class TestCase:
    @pytest.mark.parametrize("spelling", case_variants("web_search") + case_variants("deleteRepo") + ["deleterepo"])
    def test_no_spelling_passes_a_deny(self, stub, spelling: str) -> None:  # type: ignore[no-untyped-def]
        """A tool denied by name is denied in every case, by Check, BatchCheck and FilterAllowed."""
        assert not check(stub, spelling).allowed
        batch = stub.BatchCheck(authorization_pb2.BatchCheckRequest(
            policy_set="tools", tenant="acme", subject=types_pb2.Entity(id="carol"),
            items=[authorization_pb2.BatchCheckItem(action="invoke", resource=tool(spelling))],
        ))
        assert not batch.results[0].allowed and not batch.results[0].error
        filtered = stub.FilterAllowed(authorization_pb2.FilterAllowedRequest(
            policy_set="tools", tenant="acme", subject=types_pb2.Entity(id="carol"), action="invoke",
            candidates=[tool(spelling), tool("anything_else")],
        ))
        assert list(filtered.allowed_indexes) == [1]

    @pytest.mark.parametrize("spelling", ["getWeather", "getweather", "GetWeather", "GETWEATHER", "searchDocs"])
    def test_allowed_tool_in_any_case_is_allowed(self, stub, spelling: str) -> None:  # type: ignore[no-untyped-def]
        """A tool allowed as getWeather is allowed however the caller spells it."""
        assert check(stub, spelling, subject="alice").allowed

    @pytest.mark.parametrize(
        ("subject", "tenant", "action"), [("Alice", "acme", "invoke"), ("ALICE", "ACME", "Invoke"), ("alice", "Acme", "INVOKE")]
    )
    def test_subject_tenant_and_action_compare_folded(self, stub, subject: str, tenant: str, action: str) -> None:  # type: ignore[no-untyped-def]
        """Subject, tenant and action are ids too: any case of them gets alice's decisions."""
        assert check(stub, "getWeather", subject=subject, tenant=tenant, action=action).allowed
        assert not check(stub, "GetWeather_Admin", subject=subject, tenant=tenant, action=action).allowed

    def test_subject_spelled_as_a_role_is_refused(self, stub) -> None:  # type: ignore[no-untyped-def]
        """A subject named like a role in any case (User, POWER) is refused, not granted the role."""
        for name in ("User", "POWER", "Power"):
            assert invalid_field(check, stub, "getWeather", subject=name) == "subject.id"

    def test_filter_tools_offers_mcp_names_as_given(self, server) -> None:  # type: ignore[no-untyped-def]
        """filter_tools offers getWeather (the caller's own dict) and drops denied or confusable names."""
        names = ["getWeather", "SearchDocs", "Web_Search", "deleteRepo", "get\u200bWeather", "s\u0435archDocs"]
        tools = [{"type": "function", "function": {"name": name}} for name in names]
        with SyncClient(server.target) as client:
            offered = client.filter_tools(tools, tenant="acme", subject="alice", policy_set="tools")
        assert offered == [tools[0], tools[1]]
        assert offered[0] is tools[0]

    def test_filter_allowed_echoes_the_callers_spelling(self, stub) -> None:  # type: ignore[no-untyped-def]
        """FilterAllowed answers with the candidates exactly as sent, not their folded ids."""
        response = stub.FilterAllowed(authorization_pb2.FilterAllowedRequest(
            policy_set="tools", tenant="acme", subject=types_pb2.Entity(id="Alice"), action="invoke",
            candidates=[tool("GetWeather"), tool("WEB_SEARCH")],
        ))
        assert [r.id for r in response.allowed] == ["GetWeather"]
        assert [d.resource.id for d in response.denied] == ["WEB_SEARCH"]

    def test_list_allowed_answers_for_any_spelling_of_the_subject(self, stub) -> None:  # type: ignore[no-untyped-def]
        """ListAllowed for ALICE lists what it lists for alice (the folded rule ids)."""
        def listed(subject: str) -> list[str]:
            return sorted(stub.ListAllowed(authorization_pb2.ListAllowedRequest(
                policy_set="tools", tenant="acme", subject=types_pb2.Entity(id=subject), action="invoke", kind="tool",
            )).resource_ids)
        assert listed("ALICE") == listed("alice") == ["getweather", "searchdocs"]

    def test_exact_sets_compare_ids_as_given(self, stub) -> None:  # type: ignore[no-untyped-def]
        """A set that declares ids: {compare: exact} matches only the spelling of its rules."""
        assert check(stub, "getWeather", subject="alice", policy_set="exact").allowed
        assert not check(stub, "getweather", subject="alice", policy_set="exact").allowed
        assert check(stub, "Web_Search", policy_set="exact").allowed  # its author's choice
        assert not check(stub, "web_search", policy_set="exact").allowed


class TestConfusables:
    @pytest.mark.parametrize("spelling", confusable_variants("payments_transfer") + confusable_variants("web_search"))
    def test_confusable_resource_id_is_refused_everywhere(self, stub, spelling: str) -> None:  # type: ignore[no-untyped-def]
        """A look-alike of a denied tool never reaches tool:*, in Check, BatchCheck or FilterAllowed."""
        assert invalid_field(check, stub, spelling) == "resource.id"
        batch = stub.BatchCheck(authorization_pb2.BatchCheckRequest(
            policy_set="tools", tenant="acme", subject=types_pb2.Entity(id="carol"),
            items=[authorization_pb2.BatchCheckItem(action="invoke", resource=tool(spelling))],
        ))
        assert not batch.results[0].allowed and batch.results[0].error.startswith("items[0].resource.id:")
        filtered = stub.FilterAllowed(authorization_pb2.FilterAllowedRequest(
            policy_set="tools", tenant="acme", subject=types_pb2.Entity(id="carol"), action="invoke",
            candidates=[tool(spelling)],
        ))
        assert not filtered.allowed and filtered.denied[0].error.startswith("candidates[0].id:")

    @pytest.mark.parametrize("spelling", ["\u0441\u043e\u0440\u0443", "\u0421\u041e\u0420\u0423", "\u03bf\u03bd", "\u0441\u043e\u0440\u0443_2"])
    def test_whole_script_lookalike_is_refused(self, stub, spelling: str) -> None:  # type: ignore[no-untyped-def]
        """An id written only in Cyrillic or Greek letters drawn like Latin ones (сору for copy) is refused."""
        assert invalid_field(check, stub, spelling) == "resource.id"
        assert not check(stub, "copy").allowed

    @pytest.mark.parametrize("spelling", confusable_variants("alice")[:12])
    def test_confusable_subject_and_actor_are_refused(self, stub, spelling: str) -> None:  # type: ignore[no-untyped-def]
        """Subject and actor ids are held to the same rules, in every RPC that takes them."""
        assert invalid_field(check, stub, "getWeather", subject=spelling) == "subject.id"
        assert invalid_field(check, stub, "getWeather", subject="alice", actor=types_pb2.Entity(id=spelling)) == "actor.id"
        assert invalid_field(stub.BatchCheck, authorization_pb2.BatchCheckRequest(
            policy_set="tools", tenant="acme", subject=types_pb2.Entity(id=spelling),
            items=[authorization_pb2.BatchCheckItem(action="invoke", resource=tool("getWeather"))],
        )) == "subject.id"
        assert invalid_field(stub.ListAllowed, authorization_pb2.ListAllowedRequest(
            policy_set="tools", tenant="acme", subject=types_pb2.Entity(id=spelling), action="invoke", kind="tool",
        )) == "subject.id"

    @pytest.mark.parametrize("name", ["\u691c\u7d22\u30c4\u30fc\u30eb", "\u043f\u043e\u0438\u0441\u043a", "caf\u00e9", "getWeather"])
    def test_single_script_ids_pass(self, stub, name: str) -> None:  # type: ignore[no-untyped-def]
        """Ids in one script (Japanese, Cyrillic, accented Latin in NFC) are decided, not refused."""
        assert check(stub, name).allowed

    @pytest.mark.parametrize("kind", ["Tool", "TOOL", "to/ol", "..", "tool:x", "tool.x", "1tool", "t\u043e\u043el", "tool-x"])
    def test_kind_is_a_lowercase_identifier(self, stub, kind: str) -> None:  # type: ignore[no-untyped-def]
        """resource.kind is a lowercase identifier: separators, dots and upper case are refused."""
        assert invalid_field(check, stub, "x", resource=tool("getWeather", kind=kind)) == "resource.kind"
        assert invalid_field(stub.ListAllowed, authorization_pb2.ListAllowedRequest(
            policy_set="tools", tenant="acme", subject=types_pb2.Entity(id="alice"), action="invoke", kind=kind,
        )) == "kind"


def ctx(**values: object) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(values)
    return s


# Other spellings of addresses inside the denied networks 10.0.0.0/8, fe80::/10, 2001:db8::/32.
DENIED_ADDRESSES = [
    "10.0.0.5", "::ffff:10.0.0.5", "::FFFF:10.0.0.5", "::ffff:a00:5", "0:0:0:0:0:ffff:10.0.0.5",
    "0000:0000:0000:0000:0000:ffff:0a00:0005", "::10.0.0.5", "::a00:5", "0:0:0:0:0:0:10.255.1.1",
    "fe80::1%eth0", "FE80::1", "fe80:0:0:0:0:0:0:1%25", "2001:DB8::1", "2001:0db8:0000:0000:0000:0000:0000:0001",
    # denied by a rule written IPv4-mapped (::ffff:192.168.0.0/112)
    "192.168.0.9", "::ffff:192.168.0.9", "::ffff:c0a8:9",
]


class TestAddresses:
    @pytest.mark.parametrize("address", DENIED_ADDRESSES)
    def test_every_spelling_of_a_denied_address_is_denied(self, stub, address: str) -> None:  # type: ignore[no-untyped-def]
        """No spelling of an address in a denied network gets past its deny, however the rule spells it."""
        assert not check(stub, "x", subject="alice", policy_set="net", tenant="t", context=ctx(ip=address)).allowed

    @pytest.mark.parametrize("address", DENIED_ADDRESSES)
    def test_declared_ip_attribute_is_canonical_in_batches_and_filters(self, stub, address: str) -> None:  # type: ignore[no-untyped-def]
        """An attribute typed ip in schema.yaml is canonical too, in BatchCheck and FilterAllowed."""
        batch = stub.BatchCheck(authorization_pb2.BatchCheckRequest(
            policy_set="peer", tenant="t", subject=types_pb2.Entity(id="alice"),
            items=[authorization_pb2.BatchCheckItem(action="invoke", resource=tool("x"), context=ctx(peer=address))],
        ))
        assert not batch.results[0].allowed and not batch.results[0].error
        filtered = stub.FilterAllowed(authorization_pb2.FilterAllowedRequest(
            policy_set="peer", tenant="t", subject=types_pb2.Entity(id="alice"), action="invoke",
            candidates=[tool("x")], context=ctx(peer=address),
        ))
        assert not filtered.allowed

    @pytest.mark.parametrize("address", ["10.1.2.3.4", "010.0.0.5", "10.0.0.5/8", "0x0a.0.0.5", "localhost", "", "\uff11\uff10.0.0.5"])
    def test_what_is_no_address_is_refused(self, stub, address: str) -> None:  # type: ignore[no-untyped-def]
        """An ip-typed value that is not one address (octal-looking, a network, a name) is refused."""
        assert invalid_field(check, stub, "x", subject="alice", policy_set="net", tenant="t", context=ctx(ip=address)) == "context.ip"
        assert invalid_field(check, stub, "x", subject="alice", policy_set="peer", tenant="t", context=ctx(peer=address)) == "context.peer"

    @pytest.mark.parametrize("address", ["192.0.2.7", "::ffff:192.0.2.7", "2001:db9::1"])
    def test_addresses_outside_the_denied_networks_are_allowed(self, stub, address: str) -> None:  # type: ignore[no-untyped-def]
        """Canonical spelling changes no answer for addresses the denies do not cover."""
        assert check(stub, "x", subject="alice", policy_set="net", tenant="t", context=ctx(ip=address)).allowed


@pytest.fixture(scope="module")
def token_channel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[grpc.Channel]:
    """The example policies behind a server that verifies callers and subject tokens."""
    jwks = FACTORY.write_jwks(tmp_path_factory.mktemp("keys") / "jwks.json")
    with running_server(ROOT / "policies", security=security(jwks)) as handle, grpc.insecure_channel(handle.target) as ch:
        yield ch


class TestTokenIds:
    """Ids taken from verified subject tokens are held to the same rules as ids sent in requests."""

    def token_check(self, channel: grpc.Channel, resource: str, **claims: object):  # type: ignore[no-untyped-def]
        stub = authorization_pb2_grpc.AuthorizationServiceStub(channel)
        return stub.Check(
            authorization_pb2.CheckRequest(
                tenant="acme", subject=types_pb2.Entity(), subject_token=user_token(**claims),
                action="invoke", resource=tool(resource),
            ),
            metadata=bearer(FACTORY.token(scope="authz:check")),  # fresh: a module-level one expires
        )

    @pytest.mark.parametrize("sub", ["b\u200bob", "b\u043eb", "\uff42ob", "bob\u202e", "b\u00adob"])
    def test_confusable_token_subject_is_refused(self, token_channel: grpc.Channel, sub: str) -> None:
        """A signed token whose sub or act.sub hides or imitates characters is refused, naming
        the claim: it never becomes a fresh identity."""
        refusals = (
            ({"sub": sub}, grpc.StatusCode.UNAUTHENTICATED, "token claim sub:"),
            ({"act": {"sub": f"agent:{sub}"}}, grpc.StatusCode.INVALID_ARGUMENT, "subject_token: act.sub"),
        )
        for claims, code, named in refusals:
            with pytest.raises(grpc.RpcError) as caught:
                self.token_check(token_channel, "web_search", **claims)
            assert caught.value.code() == code, caught.value.details()
            assert caught.value.details().startswith(named), caught.value.details()

    def test_token_subject_compares_folded(self, token_channel: grpc.Channel) -> None:
        """A token for BOB is decided as bob: allowed what bob is, denied payments in any spelling."""
        assert self.token_check(token_channel, "Shell_Exec", sub="BOB").allowed
        assert not self.token_check(token_channel, "Payments_Transfer", sub="Bob").allowed
