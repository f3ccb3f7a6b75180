"""The compiled policy of every set, as loaded in this process, and how it gets there.

A LoadedPolicy is immutable; swapping a set to a new version is one
reference assignment in the registry, so a request sees either the old
version or the new one, never half of each.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from policy_engine.bundle import AttributeSchema, Bundle, bundle_schema, compile_bundle
from policy_engine.engine import Engine
from policy_engine.errors import NoActiveVersionError, NotFoundError, NotReadyError
from policy_engine.store import VersionRecord

__all__ = ["LoadedPolicy", "PolicyRegistry", "load_version"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedPolicy:
    """One version of one policy set, compiled and ready to decide."""

    policy_set: str
    version: int
    sha256: str
    engine: Engine
    schema: AttributeSchema = AttributeSchema()


def load_version(record: VersionRecord) -> LoadedPolicy:
    """Compile a stored version (off the request path: this can take a while for big sets)."""
    bundle = Bundle(
        record.policy_set,
        record.model_text,
        record.policy_text,
        record.tests,
        record.schema_text,
        roles_text=record.roles_text,
    )
    engine = compile_bundle(bundle)
    return LoadedPolicy(
        policy_set=record.policy_set,
        version=record.number,
        sha256=record.sha256,
        engine=engine,
        schema=bundle_schema(bundle, engine),
    )


class PolicyRegistry:
    """The active, compiled version of each policy set in this process."""

    def __init__(self) -> None:
        self._policies: Mapping[str, LoadedPolicy] = MappingProxyType({})
        self._changed = asyncio.Event()

    def get(self, policy_set: str) -> LoadedPolicy:
        policy = self._policies.get(policy_set)
        if policy is None:
            if not self._policies:
                raise NotReadyError("no policy version is loaded yet; try again shortly")
            raise NotFoundError(f"unknown policy set {policy_set!r}")
        return policy

    def snapshot(self) -> Mapping[str, LoadedPolicy]:
        return self._policies

    def install(self, policy: LoadedPolicy) -> None:
        """Make `policy` the one that decides for its set (copy-on-write, one assignment)."""
        self._policies = MappingProxyType({**self._policies, policy.policy_set: policy})
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def at_least(self, policy_set: str, min_version: int, timeout: float | None) -> LoadedPolicy:
        """The set's policy now, or, when `min_version` asks for more, once it is loaded."""
        policy = self._policies.get(policy_set)
        if policy is not None and policy.version >= min_version:
            return policy
        if min_version <= 0 or not self._policies:
            return self.get(policy_set)  # raises the right error: not ready, or unknown set
        return await self.wait_for(policy_set, min_version, timeout)

    async def wait_for(self, policy_set: str, min_version: int, timeout: float | None) -> LoadedPolicy:
        """The set's policy once its version is at least `min_version`, or raise on timeout."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            policy = self._policies.get(policy_set)
            if policy is not None and policy.version >= min_version:
                return policy
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                have = policy.version if policy else "none"
                raise NoActiveVersionError(
                    f"policy set {policy_set!r}: version {min_version} is not loaded yet (have {have})"
                )
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                continue
