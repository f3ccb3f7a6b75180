"""Requests drawn from a world (benchmarks/world.py): Checks of an intended outcome, batches, filters.

Most requests are new draws; a share `repeat_rate` re-sends a recent one, as an
agent loop or a retry would.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from world import AGENTS, CHECK_MIX, MODELS, USERS, Ask, Batch, Resource, User, World

__all__ = ["Stream"]


class Stream:
    """Requests drawn from a world: new ones mostly; a share `repeat_rate` re-sends a recent one.

    `seen` counts the decisions (Checks, batch items, filter candidates) whose whole
    request (tenant, parties with attributes, action, resource with attributes) was
    sent before in this stream: the rate a cache keyed on the request could hit at best.
    """

    RECENT = 2_000

    def __init__(self, world: World, seed: int, repeat_rate: float) -> None:
        self.world = world
        self.rng = random.Random(seed)
        self.repeat_rate = repeat_rate
        self._recent: dict[str, list[Any]] = {}
        self._keys: set[Ask] = set()
        self.decisions = 0
        self.seen = 0

    def _count(self, asks: list[Ask]) -> None:
        for ask in asks:
            self.decisions += 1
            if ask in self._keys:
                self.seen += 1
            else:
                self._keys.add(ask)

    def _maybe_repeat(self, kind: str) -> Any:
        recent = self._recent.get(kind)
        if recent and self.rng.random() < self.repeat_rate:
            return self.rng.choice(recent)
        return None

    def _remember(self, kind: str, request: Any) -> None:
        recent = self._recent.setdefault(kind, [])
        recent.append(request)
        if len(recent) > 2 * self.RECENT:
            del recent[: self.RECENT]

    def check(self, outcome: str | None = None) -> Ask:
        """One Check; `outcome` forces its intended outcome ("allow" or a denial), else drawn from CHECK_MIX."""
        repeated = None if outcome else self._maybe_repeat("check")
        if repeated is None:
            rng = self.rng
            outcome = outcome or rng.choices(list(CHECK_MIX), weights=list(CHECK_MIX.values()))[0]
            for _ in range(10_000):
                ask = self._draw(outcome)
                if self.world.expected(ask)[1] == outcome:
                    break
            else:
                raise RuntimeError(f"the world has no request with outcome {outcome!r}")
            self._remember("check", ask)
        else:
            ask = repeated
        self._count([ask])
        return ask

    def batch(self, size: int) -> Batch:
        """A BatchCheck of `size` items of one user: tools, data scopes, models and memory of one tenant."""
        batch = self._maybe_repeat(f"batch{size}")
        if batch is None:
            tenant, user, attributes, actor = self._parties()
            items: dict[tuple[str, str], tuple[str, Resource]] = {}
            for _ in range(size * 20):
                action, resource = self._action(tenant)
                items.setdefault((action, resource.key), (action, resource))
                if len(items) == size:
                    break
            batch = Batch(tenant, user.id, attributes, actor, tuple(items.values()))
            self._remember(f"batch{size}", batch)
        self._count(batch.asks())
        return batch

    def filter(self, size: int) -> Batch:
        """A FilterAllowed: the tools to offer the model (invoke) or the scopes retrieval may read (read)."""
        batch = self._maybe_repeat(f"filter{size}")
        if batch is None:
            rng, world = self.rng, self.world
            tenant, user, attributes, actor = self._parties()
            catalog = world.catalogs[tenant]
            if rng.random() < 0.6:
                action, own = "invoke", [world.tool(tenant, t) for t in [*world.global_tools, *catalog.tools]]
            else:
                action, own = "read", [world.scope(tenant, s) for s in catalog.scopes]
            candidates = {resource.key: resource for resource in rng.sample(own, min(size, len(own)))}
            for _ in range(size * 20):  # the app's list also holds what other tenants registered
                if len(candidates) == size:
                    break
                other = world.catalogs[rng.choice(world.tenants)]
                names = list(other.tools if action == "invoke" else other.scopes)
                name = rng.choice(names)
                risk_or_class = other.tools[name] if action == "invoke" else other.scopes[name][0]
                resource = (Resource("tool", name, (("risk", risk_or_class),)) if action == "invoke"
                            else Resource("data", name, (("classification", risk_or_class),)))
                candidates.setdefault(resource.key, resource)
            batch = Batch(tenant, user.id, attributes, actor, tuple((action, r) for r in candidates.values()))
            self._remember(f"filter{size}", batch)
        self._count(batch.asks())
        return batch

    # ------------------------------------------------------------ drawing

    def _parties(self) -> tuple[str, User, tuple[tuple[str, Any], ...], str | None]:
        rng, world = self.rng, self.world
        user = rng.choice(world.users)
        roll = rng.random()
        tenant = (user.guest[0] if user.guest and roll < 0.12 else
                  rng.choice(world.tenants) if roll > 0.95 else user.home)
        actor = rng.choice(sorted(AGENTS)) if rng.random() < 0.4 else None
        return tenant, user, self._attributes(user, rng.random() < 0.8), actor

    @staticmethod
    def _attributes(user: User, mfa: bool) -> tuple[tuple[str, Any], ...]:
        return (("home_tenant", user.home), ("mfa", mfa), ("clearance", user.clearance))

    def _draw(self, outcome: str) -> Ask:
        rng, world = self.rng, self.world
        user = rng.choice(world.users)
        if outcome == "wrong_tenant":
            tenant = rng.choice(world.tenants)
        elif user.guest and rng.random() < 0.1:
            tenant = user.guest[0]
        else:
            tenant = user.home
        mfa = {"no_mfa": False, "allow": rng.random() < 0.9}.get(outcome, rng.random() < 0.8)
        if outcome == "actor" or (outcome == "allow" and rng.random() < 0.4):
            actor = rng.choice(sorted(AGENTS))
        else:
            actor = None
        action, resource = self._action(tenant, outcome)
        return Ask(tenant, user.id, self._attributes(user, mfa), actor, action, resource)

    def _action(self, tenant: str, outcome: str = "") -> tuple[str, Resource]:
        rng, world = self.rng, self.world
        catalog = world.catalogs[tenant]
        roll = rng.random()
        if outcome == "deny_rule" and roll < 0.6:
            roll = 0.0 if rng.random() < 0.7 else 0.5  # a denied tool, else a secrets scope
        elif outcome in ("no_mfa",):
            roll = 0.0
        elif outcome == "low_clearance":
            roll = 0.5
        if roll < 0.45:
            tools = (list(catalog.disabled) + ["payments_transfer", "payments_refund"]
                     if outcome == "deny_rule" and rng.random() < 0.8
                     else list(world.global_tools) + list(catalog.tools))
            return "invoke", world.tool(tenant, rng.choice(tools))
        if roll < 0.75:
            return "read", world.scope(tenant, rng.choice(list(catalog.scopes)))
        if roll < 0.80:
            return "write", world.scope(tenant, rng.choice(list(catalog.scopes)))
        if roll < 0.90:
            model = rng.choice(list(MODELS))
            return "generate", Resource("model", model, (("risk", MODELS[model][1]),))
        if rng.random() < 0.8:
            return "write", Resource("memory", f"session/{rng.randrange(10**9)}", (("classification", 0),))
        return "write", Resource("memory", f"profile/u{rng.randrange(USERS):05d}", (("classification", 1),))

    def checks(self, count: int) -> Iterator[Ask]:
        for _ in range(count):
            yield self.check()
