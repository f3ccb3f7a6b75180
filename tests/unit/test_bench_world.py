"""The benchmark's generated world: reproducible, and its expected decisions are pycasbin's."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from oracle import Oracle  # noqa: E402
from world import CHECK_MIX, DENIALS, Ask, World  # noqa: E402

from policy_engine.bundle import compile_bundle, load_bundle, run_bundle_tests  # noqa: E402


def small(seed: int = 3) -> World:
    return World.generate(rules=300, seed=seed, tenants=4, users=40)


@pytest.fixture(scope="module")
def world() -> World:
    return small()


def test_same_seed_gives_the_same_rules_and_requests() -> None:
    """Two worlds of one seed write the same policy and draw the same requests; another seed differs."""
    first, second, other = small(), small(), small(seed=4)
    assert first.policy_text == second.policy_text
    assert first.policy_text != other.policy_text
    one, two = first.stream(seed=9), second.stream(seed=9)
    assert [one.check() for _ in range(300)] == [two.check() for _ in range(300)]
    assert [one.batch(50) for _ in range(5)] == [two.batch(50) for _ in range(5)]
    assert [one.filter(100) for _ in range(5)] == [two.filter(100) for _ in range(5)]


def test_world_size_follows_the_requested_rule_count() -> None:
    """A world asked for 10,000 rules writes within 5% of that many policy lines."""
    world = World.generate(rules=10_000, seed=7)
    assert abs(world.rule_count - 10_000) <= 500
    assert len(world.tenants) == 200 and len(world.users) == 4_000


def test_no_tenant_grants_a_resource_that_is_granted_everywhere() -> None:
    """No tenant rule re-grants a resource that a global rule grants (two grants, two risks)."""
    world = World.generate(rules=10_000, seed=7)
    granted: dict[str, set[tuple[str, str]]] = {}
    for line in world.policy_text.splitlines():
        fields = [field.strip() for field in line.split(",")]
        if fields[0] == "p" and fields[-1] == "allow" and not fields[3].endswith("*"):
            granted.setdefault(fields[2], set()).add((fields[3], fields[4]))
    everywhere = granted.pop("*")
    assert everywhere
    for tenant, own in granted.items():
        assert not own & everywhere, (tenant, own & everywhere)


def test_checks_reach_every_intended_outcome(world: World) -> None:
    """Every kind of denial and the allow can be drawn, and the world expects what was intended."""
    stream = world.stream(seed=5, repeat_rate=0.0)
    assert set(CHECK_MIX) == {"allow", *DENIALS}
    for outcome in CHECK_MIX:
        for _ in range(20):
            ask = stream.check(outcome)
            assert world.expected(ask) == (outcome == "allow", outcome), ask


def test_expected_decisions_equal_pycasbin(world: World) -> None:
    """On Checks, batch items and filter candidates, the world's expected decision is pycasbin's."""
    judge = Oracle(world)
    stream = world.stream(seed=11)
    asks = [stream.check() for _ in range(200)] + stream.batch(50).asks() + stream.filter(100).asks()[:50]
    assert {world.expected(ask)[1] for ask in asks} == {"allow", *DENIALS}
    for ask in asks:
        assert judge.allowed(ask) == world.expected(ask)[0], (ask, world.expected(ask))


def test_every_resource_of_a_tenant_is_expected_as_pycasbin_decides(world: World) -> None:
    """Each tool and data scope of a tenant, asked by a user of every role, gets pycasbin's decision."""
    judge = Oracle(world)
    users = {}
    for user in world.users:
        users.setdefault(user.level, user)
    assert sorted(users) == [0, 1, 2, 3]
    for user in users.values():
        tenant, catalog = user.home, world.catalogs[user.home]
        resources = [("invoke", world.tool(tenant, tool)) for tool in [*world.global_tools, *catalog.tools]]
        resources += [("read", world.scope(tenant, scope)) for scope in catalog.scopes]
        attributes = (("home_tenant", user.home), ("mfa", True), ("clearance", user.clearance))
        for action, resource in resources:
            ask = Ask(tenant, user.id, attributes, None, action, resource)
            assert judge.allowed(ask) == world.expected(ask)[0], (ask, world.expected(ask))


def test_oracle_by_tenant_and_action_equals_pycasbin_with_every_rule(world: World) -> None:
    """Loading pycasbin with only the rules of the request's tenant and action changes no decision."""
    whole, reduced = Oracle(world, whole=True), Oracle(world)
    stream = world.stream(seed=12)
    asks = [stream.check() for _ in range(40)] + stream.batch(50).asks()[:20]
    assert {reduced.allowed(ask) for ask in asks} == {True, False}
    for ask in asks:
        assert reduced.allowed(ask) == whole.allowed(ask), ask


def test_written_bundle_loads_and_its_tests_pass(world: World, tmp_path: Path) -> None:
    """The policy set the benchmark serves is accepted by the bundle loader and passes its own tests."""
    world.write_bundle(tmp_path / "world")
    bundle = load_bundle(tmp_path / "world")
    report = run_bundle_tests(bundle, compile_bundle(bundle))
    assert len(report.results) == 40
    assert report.passed, report.problems()


def test_stream_repeats_about_the_stated_share(world: World) -> None:
    """With a 10% repeat rate most requests are new; with none, repeats are rare coincidences."""
    repeating, fresh = world.stream(seed=13, repeat_rate=0.1), world.stream(seed=13, repeat_rate=0.0)
    for _ in range(3_000):
        repeating.check()
        fresh.check()
    assert 0.08 <= repeating.seen / repeating.decisions <= 0.3
    assert fresh.seen / fresh.decisions < repeating.seen / repeating.decisions - 0.05
