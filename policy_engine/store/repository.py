"""Repositories of policy versions and activations.

Versions are immutable: this module offers no way to update or delete one,
and activations are append-only events. The active version of a set is the
one named by its latest activation.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from policy_engine.errors import (
    NotFoundError,
    NothingToRollBackError,
    StaleActivationError,
    StoreError,
)
from policy_engine.store.db import Guarded
from policy_engine.store.decision_log import DecisionLogRepository
from policy_engine.store.tables import activations, policy_sets, policy_versions

__all__ = [
    "ACTIVATION_CHANNEL",
    "ActivationRecord",
    "ActivationRequest",
    "NewVersion",
    "NothingToRollBackError",
    "PolicyRepository",
    "StaleActivationError",
    "VersionRecord",
    "walk_back_path",
]

# PostgreSQL NOTIFY channel on which every activation is announced.
ACTIVATION_CHANNEL = "policy_engine_activations"


@dataclass(frozen=True)
class NewVersion:
    """The content and provenance of a version to store."""

    model_text: str
    policy_text: str
    sha256: str
    rule_count: int
    message: str
    author: str
    tests: Mapping[str, str] = field(default_factory=dict)
    git_commit: str | None = None
    git_dirty: bool | None = None
    schema_text: str = ""
    roles_text: str = ""


@dataclass(frozen=True)
class VersionRecord:
    policy_set: str
    number: int
    sha256: str
    model_text: str
    policy_text: str
    tests: Mapping[str, str]
    rule_count: int
    message: str
    author: str
    git_commit: str | None
    git_dirty: bool | None
    created_at: datetime
    schema_text: str = ""
    roles_text: str = ""


@dataclass(frozen=True)
class ActivationRecord:
    id: int
    policy_set: str
    version: int
    previous_version: int | None
    actor: str
    reason: str
    created_at: datetime


@dataclass(frozen=True)
class ActivationRequest:
    """Who activates, why, and what they expect to be active now."""

    actor: str
    reason: str
    expected_active: int | None = None
    expect_none_active: bool = False


class PolicyRepository:
    """Policy sets, their immutable versions and activation events, in one SQL database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._admin_audit = DecisionLogRepository(engine)

    def policy_set_names(self) -> list[str]:
        with self._read() as conn:
            return list(conn.scalars(select(policy_sets.c.name).order_by(policy_sets.c.name)))

    def add_version(
        self, policy_set: str, new: NewVersion, activate: ActivationRequest | None = None
    ) -> tuple[VersionRecord, bool, ActivationRecord | None]:
        """Store a version (identical content returns the existing one, created=False).

        With `activate`, the version is also activated in the same transaction,
        so either both happen or neither does.
        """
        for _attempt in range(5):
            try:
                with self._write() as conn:
                    set_id = self._ensure_set(conn, policy_set)
                    record, created = self._insert_version(conn, set_id, policy_set, new)
                    if created:
                        self._admin_audit.record_admin_event(
                            conn,
                            action="push",
                            policy_set=policy_set,
                            version=record.number,
                            actor=new.author,
                            detail={"sha256": new.sha256, "message": new.message, "git_commit": new.git_commit},
                        )
                    activation = None
                    if activate is not None:
                        activation = self._activate(conn, set_id, policy_set, record.number, activate)
                    return record, created, activation
            except IntegrityError:
                continue  # a concurrent push took the number; decide again
        raise StoreError(f"could not allocate a version number for {policy_set!r}")

    def _insert_version(
        self, conn: Connection, set_id: int, policy_set: str, new: NewVersion
    ) -> tuple[VersionRecord, bool]:
        existing = conn.execute(
            _versions_query().where(
                policy_versions.c.policy_set_id == set_id,
                policy_versions.c.sha256 == new.sha256,
            )
        ).first()
        if existing is not None:
            return _version(existing), False
        number = (
            conn.scalar(
                select(func.max(policy_versions.c.number)).where(
                    policy_versions.c.policy_set_id == set_id
                )
            )
            or 0
        ) + 1
        conn.execute(
            insert(policy_versions).values(
                policy_set_id=set_id,
                number=number,
                sha256=new.sha256,
                model_text=new.model_text,
                policy_text=new.policy_text,
                tests_json=json.dumps(dict(new.tests), sort_keys=True),
                schema_text=new.schema_text,
                roles_text=new.roles_text,
                rule_count=new.rule_count,
                message=new.message,
                author=new.author,
                git_commit=new.git_commit,
                git_dirty=new.git_dirty,
                created_at=_now(),
            )
        )
        row = conn.execute(
            _versions_query().where(
                policy_versions.c.policy_set_id == set_id,
                policy_versions.c.number == number,
            )
        ).one()
        return _version(row), True

    def list_versions(self, policy_set: str) -> list[VersionRecord]:
        """Every version of a set, oldest first; NotFoundError for an unknown set."""
        with self._read() as conn:
            self._set_id(conn, policy_set)
            rows = conn.execute(
                _versions_query()
                .where(policy_sets.c.name == policy_set)
                .order_by(policy_versions.c.number)
            )
            return [_version(row) for row in rows]

    def get_version(self, policy_set: str, number: int) -> VersionRecord:
        with self._read() as conn:
            row = conn.execute(
                _versions_query().where(
                    policy_sets.c.name == policy_set, policy_versions.c.number == number
                )
            ).first()
        if row is None:
            raise NotFoundError(f"policy set {policy_set!r} has no version {number}")
        return _version(row)

    def activate(
        self,
        policy_set: str,
        number: int,
        actor: str,
        reason: str,
        expected_active: int | None = None,
        expect_none_active: bool = False,
    ) -> ActivationRecord:
        """Make `number` the active version; with `expected_active`, only if that is active now."""
        request = ActivationRequest(actor, reason, expected_active, expect_none_active)
        with self._write() as conn:
            set_id = self._set_id(conn, policy_set, lock=True)
            return self._activate(conn, set_id, policy_set, number, request)

    def rollback(
        self,
        policy_set: str,
        actor: str,
        reason: str,
        to_number: int | None = None,
        expected_active: int | None = None,
    ) -> ActivationRecord:
        """Activate `to_number`, or walk one step back along the set's activation path.

        The path is the activation history with every excursion cut off: activating a version
        that is already on it returns there and drops the versions after it (what a rollback
        records). So rollback after rollback keeps walking back (3 -> 2 -> 1) instead of
        re-activating the version it just left. With `expected_active`, only if that version
        is active now (read in the same transaction, with the set locked).
        """
        with self._write() as conn:
            set_id = self._set_id(conn, policy_set, lock=True)
            current = self._active_number(conn, set_id)
            if expected_active is not None and current != expected_active:
                raise StaleActivationError(
                    f"policy set {policy_set!r}: active version is {current}, not {expected_active}"
                )
            if to_number is None:
                path = walk_back_path(self._activated_numbers(conn, set_id))
                if len(path) < 2:
                    raise NothingToRollBackError(
                        f"policy set {policy_set!r} has no earlier version to roll back to"
                    )
                to_number = path[-2]
            request = ActivationRequest(actor, reason, expected_active=current)
            return self._activate(conn, set_id, policy_set, int(to_number), request, event="rollback")

    def rollback_path(self, policy_set: str) -> list[int]:
        """The versions a rollback walks back through, oldest first; the last one is active."""
        with self._read() as conn:
            return walk_back_path(self._activated_numbers(conn, self._set_id(conn, policy_set)))

    def _activated_numbers(self, conn: Connection, set_id: int) -> list[int]:
        return list(
            conn.scalars(
                select(policy_versions.c.number)
                .join(activations, activations.c.version_id == policy_versions.c.id)
                .where(activations.c.policy_set_id == set_id)
                .order_by(activations.c.id)
            )
        )

    def list_activations(self, policy_set: str = "", limit: int = 100, since_id: int = 0) -> list[ActivationRecord]:
        """Activation events, newest first (or, with since_id, those after it, oldest first)."""
        previous = policy_versions.alias("previous")
        query = (
            select(
                activations.c.id,
                policy_sets.c.name,
                policy_versions.c.number,
                previous.c.number.label("previous_number"),
                activations.c.actor,
                activations.c.reason,
                activations.c.created_at,
            )
            .join(policy_sets, policy_sets.c.id == activations.c.policy_set_id)
            .join(policy_versions, policy_versions.c.id == activations.c.version_id)
            .outerjoin(previous, previous.c.id == activations.c.previous_version_id)
        )
        if policy_set:
            query = query.where(policy_sets.c.name == policy_set)
        if since_id:
            query = query.where(activations.c.id > since_id).order_by(activations.c.id)
        else:
            query = query.order_by(activations.c.id.desc())
        with self._read() as conn:
            if policy_set:
                self._set_id(conn, policy_set)
            rows = conn.execute(query.limit(limit)).all()
        return [
            ActivationRecord(
                id=row.id,
                policy_set=row.name,
                version=row.number,
                previous_version=row.previous_number,
                actor=row.actor,
                reason=row.reason,
                created_at=_utc(row.created_at),
            )
            for row in rows
        ]

    def _activate(
        self,
        conn: Connection,
        set_id: int,
        policy_set: str,
        number: int,
        request: ActivationRequest,
        event: str = "activate",
    ) -> ActivationRecord:
        version_id = conn.scalar(
            select(policy_versions.c.id).where(
                policy_versions.c.policy_set_id == set_id, policy_versions.c.number == number
            )
        )
        if version_id is None:
            raise NotFoundError(f"policy set {policy_set!r} has no version {number}")
        current = self._active_number(conn, set_id)
        if request.expect_none_active and current is not None:
            raise StaleActivationError(
                f"policy set {policy_set!r}: version {current} is active, expected none"
            )
        if request.expected_active is not None and current != request.expected_active:
            raise StaleActivationError(
                f"policy set {policy_set!r}: active version is {current}, "
                f"not {request.expected_active}"
            )
        previous_id = (
            conn.scalar(
                select(policy_versions.c.id).where(
                    policy_versions.c.policy_set_id == set_id,
                    policy_versions.c.number == current,
                )
            )
            if current is not None
            else None
        )
        created_at = _now()
        result = conn.execute(
            insert(activations).values(
                policy_set_id=set_id,
                version_id=version_id,
                previous_version_id=previous_id,
                actor=request.actor,
                reason=request.reason,
                created_at=created_at,
            )
        )
        self._admin_audit.record_admin_event(
            conn,
            action=event,
            policy_set=policy_set,
            version=number,
            actor=request.actor,
            detail={"previous_version": current, "reason": request.reason},
        )
        if conn.dialect.name == "postgresql":
            # Delivered at commit, so listeners never see an activation that rolled back.
            conn.execute(select(func.pg_notify(ACTIVATION_CHANNEL, policy_set)))
        return ActivationRecord(
            id=int(result.inserted_primary_key[0]),
            policy_set=policy_set,
            version=number,
            previous_version=current,
            actor=request.actor,
            reason=request.reason,
            created_at=created_at,
        )

    def _set_id(self, conn: Connection, policy_set: str, lock: bool = False) -> int:
        query = select(policy_sets.c.id).where(policy_sets.c.name == policy_set)
        set_id = conn.scalar(query.with_for_update() if lock else query)
        if set_id is None:
            raise NotFoundError(f"unknown policy set {policy_set!r}")
        return int(set_id)

    def active_version(self, policy_set: str) -> VersionRecord | None:
        return self.active_versions().get(policy_set)

    def active_versions(self) -> dict[str, VersionRecord]:
        """The active version of every policy set that has one."""
        latest = (
            select(func.max(activations.c.id).label("id"))
            .group_by(activations.c.policy_set_id)
            .subquery()
        )
        query = _versions_query().join(
            activations, activations.c.version_id == policy_versions.c.id
        ).where(activations.c.id.in_(select(latest.c.id)))
        with self._read() as conn:
            return {row.name: _version(row) for row in conn.execute(query)}

    def latest_activation_id(self) -> int:
        """A cheap change marker: grows with every activation in any policy set."""
        with self._read() as conn:
            return int(conn.scalar(select(func.coalesce(func.max(activations.c.id), 0))) or 0)

    def _ensure_set(self, conn: Connection, name: str) -> int:
        set_id = conn.scalar(
            select(policy_sets.c.id).where(policy_sets.c.name == name).with_for_update()
        )
        if set_id is not None:
            return int(set_id)
        result = conn.execute(insert(policy_sets).values(name=name, created_at=_now()))
        return int(result.inserted_primary_key[0])

    def _active_number(self, conn: Connection, set_id: int) -> int | None:
        return conn.scalar(
            select(policy_versions.c.number)
            .join(activations, activations.c.version_id == policy_versions.c.id)
            .where(activations.c.policy_set_id == set_id)
            .order_by(activations.c.id.desc())
            .limit(1)
        )

    def close_idle_connections(self) -> None:
        """Close the pooled connections not in use (the next calls open fresh ones).

        SQLite keeps the values last bound to each cached statement of a
        connection: without this, each pooled connection holds on to the text
        of the last big bundle it stored.
        """
        self._engine.dispose()

    def _read(self) -> Guarded:
        return Guarded(self._engine.connect())

    def _write(self) -> Guarded:
        return Guarded(self._engine.begin())




def walk_back_path(activated: list[int]) -> list[int]:
    """The activation path of a history of activated version numbers (oldest first): each
    activation of a version already on the path returns to it, dropping what came after."""
    path: list[int] = []
    position: dict[int, int] = {}
    for number in activated:
        at = position.get(number)
        if at is None:
            position[number] = len(path)
            path.append(number)
            continue
        for dropped in path[at + 1 :]:
            del position[dropped]
        del path[at + 1 :]
    return path


def _versions_query():  # type: ignore[no-untyped-def]
    return select(policy_versions, policy_sets.c.name).join(
        policy_sets, policy_sets.c.id == policy_versions.c.policy_set_id
    )


def _utc(moment: datetime) -> datetime:
    # SQLite returns naive datetimes; we always store UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _version(row: Any) -> VersionRecord:
    return VersionRecord(
        policy_set=row.name,
        number=row.number,
        sha256=row.sha256,
        model_text=row.model_text,
        policy_text=row.policy_text,
        tests=json.loads(row.tests_json),
        rule_count=row.rule_count,
        message=row.message,
        author=row.author,
        git_commit=row.git_commit,
        git_dirty=row.git_dirty,
        created_at=_utc(row.created_at),
        schema_text=row.schema_text,
        roles_text=row.roles_text,
    )


def _now() -> datetime:
    return datetime.now(UTC)
