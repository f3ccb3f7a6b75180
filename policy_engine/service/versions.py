"""The lifecycle of policy versions: push (check, then store), activate, roll back, diff.

Pushing never changes what is live; activating does. A push is checked
(`bundle.check_bundle`: compile, lint, schema, tests) and hashed in a worker
process (`compile_worker`), never in the serving one; a refused bundle
writes nothing.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

from policy_engine.bundle import Bundle, check_bundle
from policy_engine.bundle.loader import MODEL_FILE, SET_NAME
from policy_engine.bundle.roles import ROLES_FILE
from policy_engine.engine import Engine, MatchedRule
from policy_engine.service.compile_worker import (
    PushCheck,
    release_freed_memory,
    release_freed_memory_soon,
    shared_checker,
)
from policy_engine.errors import BundleError, InvalidRequestError, StaleActivationError
from policy_engine.store import (
    ActivationRecord,
    ActivationRequest,
    NewVersion,
    PolicyRepository,
    VersionRecord,
)

__all__ = [
    "Provenance",
    "PushResult",
    "VersionDiff",
    "VersionListing",
    "VersionService",
    "check_bundle",
]

log = logging.getLogger(__name__)

_BIG_BUNDLE = 1 << 20  # rules text (bytes) beyond which a push lets go of the database connections


@dataclass(frozen=True)
class Provenance:
    """Where a pushed bundle came from."""

    git_commit: str | None = None
    git_dirty: bool | None = None


@dataclass(frozen=True)
class PushResult:
    version: VersionRecord
    created: bool
    activation: ActivationRecord | None


@dataclass(frozen=True)
class VersionListing:
    version: VersionRecord
    active: bool


@dataclass(frozen=True)
class VersionDiff:
    added: tuple[MatchedRule, ...]
    removed: tuple[MatchedRule, ...]
    model_diff: str
    tests_changed: tuple[str, ...]
    roles_diff: str = ""


class VersionService:
    """Use cases of the admin API over a PolicyRepository (blocking; call from a worker thread)."""

    def __init__(
        self,
        repository: PolicyRepository,
        watch_interval: float = 0.25,
        checker: PushCheck | None = None,
    ) -> None:
        self._repository = repository
        self._watch_interval = watch_interval
        # Off the serving process by default: compile, lint, tests and digest of a push.
        self._check = checker or shared_checker()

    def push(
        self,
        bundle: Bundle,
        *,
        message: str,
        author: str,
        provenance: Provenance = Provenance(),
        activate: bool = False,
        reason: str = "",
        only_if_none_active: bool = False,
    ) -> PushResult:
        """Store the bundle as a version once it compiles, lints clean and passes its tests."""
        _require_set_name(bundle.name)
        _require("author", author)
        release_freed_memory()  # what the last push left behind once its response was sent
        checked = self._check(bundle)
        record, created, activation = self._repository.add_version(
            bundle.name,
            NewVersion(
                model_text=bundle.model_text,
                policy_text=bundle.policy_text,
                tests=bundle.tests,
                sha256=checked.sha256,
                rule_count=checked.rule_count,
                message=message,
                author=author,
                git_commit=provenance.git_commit,
                git_dirty=provenance.git_dirty,
                schema_text=bundle.schema_text,
                roles_text=bundle.roles_text,
            ),
            ActivationRequest(author, reason or message, expect_none_active=only_if_none_active)
            if activate
            else None,
        )
        if len(bundle.policy_text) > _BIG_BUNDLE:
            self._repository.close_idle_connections()
        release_freed_memory_soon()
        return PushResult(record, created, activation)

    def import_new(self, bundles: list[Bundle], author: str) -> list[VersionRecord]:
        """Push and activate each bundle whose policy set the database does not know yet.

        A bundle that is refused is skipped with an error in the log, and so is
        one that another replica imported first.
        """
        known = set(self._repository.policy_set_names())
        imported = []
        for bundle in bundles:
            if bundle.name in known:
                continue
            try:
                result = self.push(
                    bundle,
                    message=f"imported from policies/{bundle.name} at start-up",
                    author=author,
                    activate=True,
                    reason="initial import",
                    only_if_none_active=True,
                )
            except BundleError as exc:
                log.error("not importing policy set %s: %s", bundle.name, exc)
                continue
            except StaleActivationError:
                continue
            imported.append(result.version)
        return imported

    def list_versions(self, policy_set: str) -> list[VersionListing]:
        versions = self._repository.list_versions(policy_set)
        active = self._repository.active_version(policy_set)
        number = active.number if active else None
        return [VersionListing(v, v.number == number) for v in versions]

    def get_version(self, policy_set: str, number: int) -> VersionListing:
        version = self._repository.get_version(policy_set, number)
        active = self._repository.active_version(policy_set)
        return VersionListing(version, active is not None and active.number == number)

    def diff(self, policy_set: str, from_number: int, to_number: int) -> VersionDiff:
        old = self._repository.get_version(policy_set, from_number)
        new = self._repository.get_version(policy_set, to_number)
        old_rules, new_rules = _rules(old), _rules(new)
        old_count = Counter((r.ptype, r.values) for r in old_rules)
        new_count = Counter((r.ptype, r.values) for r in new_rules)
        added = _surplus(new_rules, new_count - old_count)
        removed = _surplus(old_rules, old_count - new_count)
        model_diff = "".join(
            difflib.unified_diff(
                old.model_text.splitlines(keepends=True),
                new.model_text.splitlines(keepends=True),
                fromfile=f"v{from_number}/{MODEL_FILE}",
                tofile=f"v{to_number}/{MODEL_FILE}",
            )
        )
        tests_changed = tuple(
            sorted(
                path
                for path in set(old.tests) | set(new.tests)
                if old.tests.get(path) != new.tests.get(path)
            )
        )
        roles_diff = "".join(
            difflib.unified_diff(
                old.roles_text.splitlines(keepends=True),
                new.roles_text.splitlines(keepends=True),
                fromfile=f"v{from_number}/{ROLES_FILE}",
                tofile=f"v{to_number}/{ROLES_FILE}",
            )
        )
        return VersionDiff(added, removed, model_diff, tests_changed, roles_diff)

    def activate(
        self,
        policy_set: str,
        number: int,
        *,
        author: str,
        reason: str,
        expected_active: int | None = None,
        expect_none_active: bool = False,
    ) -> ActivationRecord:
        _require("author", author)
        return self._repository.activate(
            policy_set, number, author, reason, expected_active, expect_none_active
        )

    def rollback(
        self,
        policy_set: str,
        *,
        author: str,
        reason: str,
        to_number: int | None = None,
        expected_active: int | None = None,
    ) -> ActivationRecord:
        """Activate `to_number`, or the version before the active one on the set's activation
        path (PolicyRepository.rollback): rolling back twice lands two versions back."""
        _require("author", author)
        return self._repository.rollback(policy_set, author, reason, to_number, expected_active)

    def list_activations(self, policy_set: str, limit: int) -> list[ActivationRecord]:
        return self._repository.list_activations(policy_set, limit=limit)

    async def watch(self, policy_set: str, since_id: int) -> AsyncIterator[ActivationRecord]:
        """Every activation after `since_id` (or from now when 0), as it happens."""
        if policy_set:
            await asyncio.to_thread(self._repository.list_versions, policy_set)  # NOT_FOUND early
        last = since_id or await asyncio.to_thread(self._repository.latest_activation_id)
        while True:
            fresh = await asyncio.to_thread(
                self._repository.list_activations, policy_set, 1000, last
            )
            for record in fresh:
                last = record.id
                yield record
            await asyncio.sleep(self._watch_interval)


def _rules(version: VersionRecord) -> tuple[MatchedRule, ...]:
    return Engine.from_text(version.model_text, version.policy_text).rules


def _surplus(rules: tuple[MatchedRule, ...], surplus: Counter) -> tuple[MatchedRule, ...]:  # type: ignore[type-arg]
    """The last `surplus[key]` occurrences of each rule key, in file order."""
    remaining = Counter(surplus)
    picked = []
    for rule in reversed(rules):
        key = (rule.ptype, rule.values)
        if remaining[key] > 0:
            remaining[key] -= 1
            picked.append(rule)
    return tuple(reversed(picked))


def _require(field: str, value: str) -> None:
    if not value.strip():
        raise InvalidRequestError(field, "is required")


def _require_set_name(name: str) -> None:
    if not SET_NAME.match(name):
        raise InvalidRequestError("policy_set", f"must match {SET_NAME.pattern}")
