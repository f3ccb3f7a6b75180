"""The decision log: append-only rows, chained per replica by a hash, purged only with a checkpoint.

Each row carries the replica that wrote it, a sequence number that grows by one per entry of
that replica (starting at 1), the hash of the previous entry of the replica (`GENESIS_HASH` for
the first) and its own hash over that previous hash and every stored column (`entry_hash`,
chain format 2 since migration 0005).
A row edited in place no longer matches its hash; a row deleted leaves a gap in `seq`.

A group row (migration 0006) holds the decisions of one BatchCheck or FilterAllowed request, or
as many of them as one writer batch took: what they share once (time, version, tenant, subject,
actor, caller, latency, the encrypted attributes) and each item's own part in `items`, a JSON
array of GROUP_ITEM_FIELDS. Its `decision_id` is its first item's; the items' ids are the
request's 24-digit prefix and their own suffix. Its `allowed` is true only when every item was
allowed, and its action, resource, rule, reason and request id are empty. Reading expands a
group row into one StoredDecision per item, so readers see decisions, never rows.

Retention deletes the oldest rows of a replica in batches; each batch writes a checkpoint
(replica, up_to_seq, last_hash, purged_rows) in the same transaction, so `verify` knows the
chain legitimately starts after `up_to_seq`, and that every missing row at or below it is
accounted for (rows under legal hold stay and are still checked against their own hash).

What the chain cannot show on its own: the newest rows of a replica deleted together (there is
no later row to miss them; compare `ReplicaChain.last_seq` with the replica's own counter), or a
writer with full database access rewriting the whole chain from some point on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from policy_engine.errors import NotFoundError, StoreError
from policy_engine.store.chain import (
    CHAINED_COLUMNS,
    GENESIS_HASH,
    CrashGap,
    canonical_time,
    chain_hash,
    entry_hash,
)
from policy_engine.store.db import Guarded
from policy_engine.store.deadlines import Deadline, sqlite_busy_timeout
from policy_engine.store.verification import ChainProblem, ChainReport, ReplicaChain, verify_replica
from policy_engine.store.audit_tables import (
    admin_audit,
    decision_log,
    decision_log_checkpoints,
    tenant_settings,
    utc,
)

__all__ = [
    "GENESIS_HASH",
    "GROUP_ITEM_FIELDS",
    "GROUP_PREFIX_LENGTH",
    "AdminEvent",
    "ChainProblem",
    "ChainReport",
    "CrashGap",
    "DecisionLogRepository",
    "ReplicaChain",
    "ROW_COLUMNS",
    "ReplicaPosition",
    "StoredDecision",
    "canonical_time",
    "chain_hash",
    "entry_hash",
    "gap_row",
    "row_from_mapping",
    "row_mapping",
]

# item's own columns, and its own keyed hashes (JSON, "" when none; the shared ones are the row's).
GROUP_ITEM_FIELDS = (
    "id_suffix", "action", "resource", "allowed", "rule", "reason", "request_id", "hashed_attributes",
)
# The length of the decision-id prefix shared by the items of one request (service.decisions).
GROUP_PREFIX_LENGTH = 24

# Only one replica purges at a time on PostgreSQL; others skip the batch.
_PURGE_LOCK = 0x6175646974


# A row as the writer hands it to `insert_rows` and the spill file: a tuple in this order.
ROW_COLUMNS = (
    "decision_id", "replica_id", "seq", "prev_hash", "entry_hash", "decided_at", "policy_set",
    "policy_version", "tenant", "subject", "actor", "caller", "action", "resource", "allowed",
    "rule", "reason", "request_id", "latency_us", "key_id", "attributes", "hashed_attributes",
    "items", "item_count",
)
_SEQ, _ENTRY_HASH, _TIME, _ALLOWED_AT = (ROW_COLUMNS.index(n) for n in ("seq", "entry_hash", "decided_at", "allowed"))


@functools.lru_cache(maxsize=4)
def _insert_sql(placeholder: str) -> str:
    columns = ", ".join(ROW_COLUMNS)
    values = ", ".join([placeholder] * len(ROW_COLUMNS))
    return (
        f"INSERT INTO decision_log ({columns}) VALUES ({values}) "
        "ON CONFLICT (decision_id) DO NOTHING"
    )


def _copy_rows(conn: Connection, rows: Sequence[Sequence[Any]], *, if_absent: bool) -> None:
    """PostgreSQL: COPY the batch, costing a few microseconds a row where one INSERT costs tens.

    New rows are copied straight into the table (they have new sequence numbers and random
    decision ids; should one be stored already, the whole COPY fails and the writer keeps the
    batch in its spill file, whose replay is insert-if-absent). Replayed rows may be stored
    already: they go through a transaction-local table, then INSERT ... ON CONFLICT DO NOTHING.
    """
    columns = ", ".join(ROW_COLUMNS)
    target = "decision_log"
    if if_absent:
        target = "decision_log_incoming"
        conn.exec_driver_sql(
            "CREATE TEMP TABLE IF NOT EXISTS decision_log_incoming "
            "(LIKE decision_log INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY {target} ({columns}) FROM STDIN") as copy:
        write_row = copy.write_row
        for row in rows:
            write_row(row)
    if if_absent:
        conn.exec_driver_sql(
            f"INSERT INTO decision_log ({columns}) SELECT {columns} FROM decision_log_incoming "
            "ON CONFLICT (decision_id) DO NOTHING"
        )


def _sqlite_params(rows: Sequence[Sequence[Any]]) -> list[Sequence[Any]]:
    # decided_at in the text form SQLAlchemy's SQLite DateTime reads back (UTC, naive), from
    # the canonical "YYYY-MM-DDTHH:MM:SS.ffffff+00:00"; a batch mostly shares a few times.
    times: dict[str, str] = {}
    out = []
    for row in rows:
        moment = row[_TIME]
        text = times.get(moment)
        if text is None:
            text = times[moment] = f"{moment[:10]} {moment[11:26]}"
        out.append((*row[:_TIME], text, *row[_TIME + 1 :]))
    return out


def row_from_mapping(row: Mapping[str, Any]) -> tuple[Any, ...]:
    """A row (ROW_COLUMNS order, canonical time text) from its mapping form (the spill file)."""
    # a spill file written before migration 0006 has no group columns: single decisions
    values = [row.get(name, _SINGLE.get(name)) for name in ROW_COLUMNS]
    values[_TIME] = canonical_time(values[_TIME])
    values[_ALLOWED_AT] = bool(values[_ALLOWED_AT])
    return tuple(values)


_SINGLE = {"items": "", "item_count": 1}


def row_mapping(row: Sequence[Any]) -> dict[str, Any]:
    """The mapping form of a row (for the spill file)."""
    return dict(zip(ROW_COLUMNS, row, strict=True))



def gap_row(replica_id: str, seq: int, prev_hash: str, gap: CrashGap, at: datetime) -> tuple[Any, ...]:
    """The crash gap record of `gap` (store.chain) as a row (ROW_COLUMNS order) at `seq` of
    `replica_id`'s chain: no decision (item_count 0), the gap as JSON in `items`, so the hash
    covers it."""
    moment = canonical_time(at)
    decision_id = f"gap:{uuid.uuid4().hex}"
    items = gap.to_json()
    values = dict.fromkeys(ROW_COLUMNS, "")
    values.update(
        decision_id=decision_id, replica_id=replica_id, seq=seq, prev_hash=prev_hash, decided_at=moment,
        policy_version=0, allowed=False, latency_us=0, hashed_attributes="{}", items=items, item_count=0,
        reason=f"crash gap: {gap.describe()}",
    )
    values["entry_hash"] = chain_hash([prev_hash, *(values[name] for name in CHAINED_COLUMNS)])
    return tuple(values[name] for name in ROW_COLUMNS)


@dataclass(frozen=True)
class StoredDecision:
    """One row of the decision log; attributes stay encrypted (see AttributeProtector.reveal)."""

    decision_id: str
    replica_id: str
    seq: int
    decided_at: datetime
    policy_set: str
    policy_version: int
    tenant: str
    subject: str
    actor: str
    caller: str
    action: str
    resource: str
    allowed: bool
    rule: str
    reason: str
    request_id: str
    latency_us: int
    key_id: str
    attributes_ciphertext: str
    hashed_attributes: Mapping[str, str]
    prev_hash: str
    entry_hash: str
    # The decision's position in its group row (its attributes are that item's of the group's
    # ciphertext); None for a decision stored in a row of its own.
    item_index: int | None = None


@dataclass(frozen=True)
class ReplicaPosition:
    """Where a replica's chain ends: its last sequence number and that entry's hash."""

    seq: int
    hash: str


@dataclass(frozen=True)
class AdminEvent:
    id: int
    created_at: datetime
    action: str
    policy_set: str
    version: int | None
    actor: str
    detail: Mapping[str, Any]


class DecisionLogRepository:
    """Reads, verifies and purges the decision log; writes rows idempotently for the writer."""

    def __init__(self, engine: Engine, *, deadline: float | None = None) -> None:
        """`deadline`: seconds the writer's operations (insert_rows, position,
        decision_ids_after) may take before the engine's connections are cut
        (store.deadlines); `engine` must then be the writer's own."""
        self._engine = engine
        self._deadline = deadline
        self._limit = Deadline(engine) if deadline is not None else None

    # --- writing (used by policy_engine.audit.DecisionLog) ---------------------------------

    def insert_rows(
        self,
        rows: Sequence[Sequence[Any]],
        *,
        statement_timeout_ms: int | None = None,
        if_absent: bool = True,
    ) -> None:
        """Insert `rows` (tuples in ROW_COLUMNS order, decided_at as `canonical_time` text) in
        one transaction.

        With `if_absent` (a replay), rows whose decision_id is already stored are skipped;
        without it (rows just sealed, which cannot be stored yet) PostgreSQL copies them straight
        into the table, and a duplicate fails the whole insert. This is the decision log's hot
        path: the driver's executemany (SQLite) or COPY (PostgreSQL), no per-row SQLAlchemy
        processing. Raises the driver's errors (wrapped by SQLAlchemy) as they are: the writer
        decides what an outage means.
        """
        if not rows:
            return
        with self._writing() as conn:
            with conn.begin():
                dialect = conn.dialect.name
                if dialect == "postgresql":
                    if statement_timeout_ms:
                        conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}")
                    _copy_rows(conn, rows, if_absent=if_absent)
                elif dialect == "sqlite":
                    conn.exec_driver_sql(_insert_sql("?"), _sqlite_params(rows))
                else:
                    raise StoreError(f"the decision log does not support {dialect!r}")

    @contextlib.contextmanager
    def _writing(self) -> Iterator[Connection]:
        """A connection for one of the writer's operations, under its deadline (if any)."""
        limit = self._limit.limit(self._deadline) if self._limit is not None else contextlib.nullcontext()
        with limit, self._engine.connect() as conn, sqlite_busy_timeout(conn, self._deadline):
            yield conn

    def position(self, replica_id: str) -> ReplicaPosition | None:
        """The end of `replica_id`'s chain in the database (rows or purge checkpoint), if any."""
        with self._writing() as conn:
            last = conn.execute(
                select(decision_log.c.seq, decision_log.c.entry_hash)
                .where(decision_log.c.replica_id == replica_id)
                .order_by(decision_log.c.seq.desc())
                .limit(1)
            ).first()
            checkpoint = conn.execute(
                select(decision_log_checkpoints.c.up_to_seq, decision_log_checkpoints.c.last_hash)
                .where(decision_log_checkpoints.c.replica_id == replica_id)
                .order_by(decision_log_checkpoints.c.up_to_seq.desc())
                .limit(1)
            ).first()
        candidates = [
            ReplicaPosition(int(row[0]), str(row[1])) for row in (last, checkpoint) if row is not None
        ]
        return max(candidates, key=lambda p: p.seq) if candidates else None

    def decision_ids_after(self, replica_id: str, seq: int) -> set[str]:
        """The decision ids of `replica_id`'s rows after `seq` (a group row's is its first
        item's): what a writer taking over must not store again."""
        with self._writing() as conn:
            return set(conn.scalars(
                select(decision_log.c.decision_id).where(
                    decision_log.c.replica_id == replica_id, decision_log.c.seq > seq
                )
            ))

    # --- reading ----------------------------------------------------------------------------

    def query(
        self,
        *,
        subject: str | None = None,
        actor: str | None = None,
        tenant: str | None = None,
        denied: bool | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[StoredDecision]:
        """Decisions matching every given filter, newest first (a group's items last one first)."""
        statement = select(decision_log).where(decision_log.c.item_count > 0)  # not crash records
        if subject is not None:
            statement = statement.where(decision_log.c.subject == subject)
        if actor is not None:
            statement = statement.where(decision_log.c.actor == actor)
        if tenant is not None:
            statement = statement.where(decision_log.c.tenant == tenant)
        if denied:  # a group row with a denied item is not `allowed`; its items are filtered below
            statement = statement.where(decision_log.c.allowed.is_(False))
        if since is not None:
            statement = statement.where(decision_log.c.decided_at >= utc(since))
        statement = statement.order_by(decision_log.c.decided_at.desc(), decision_log.c.id.desc())
        found: list[StoredDecision] = []
        with self._read() as conn:
            # A row holds at least one decision: `limit` rows are enough unless items are filtered.
            offset = 0
            while len(found) < limit:
                rows = conn.execute(statement.offset(offset).limit(limit)).all()
                for row in rows:
                    for stored in reversed(_decisions(row)):
                        if denied is None or stored.allowed is not denied:
                            found.append(stored)
                if len(rows) < limit:
                    break
                offset += limit
        return found[:limit]

    def get(self, decision_id: str) -> StoredDecision:
        """The decision with this id, in a row of its own or as an item of a group row."""
        with self._read() as conn:
            row = conn.execute(
                select(decision_log).where(decision_log.c.decision_id == decision_id)
            ).first()
            prefix = decision_id[:GROUP_PREFIX_LENGTH]
            if row is None and len(decision_id) > GROUP_PREFIX_LENGTH:
                # A group row is stored under its first item's id, which sorts before its other
                # items' ids (same prefix, smaller suffix).
                row = conn.execute(
                    select(decision_log)
                    .where(
                        decision_log.c.decision_id >= prefix,
                        decision_log.c.decision_id < decision_id,
                        decision_log.c.item_count > 1,
                    )
                    .order_by(decision_log.c.decision_id.desc())
                    .limit(1)
                ).first()
        if row is not None and row.decision_id.startswith(prefix):
            for stored in _decisions(row):
                if stored.decision_id == decision_id:
                    return stored
        raise NotFoundError(f"no decision {decision_id!r} in the log")

    def count(self) -> int:
        """The number of decisions stored (a group row counts its items)."""
        with self._read() as conn:
            return int(conn.scalar(select(func.coalesce(func.sum(decision_log.c.item_count), 0))) or 0)

    # --- tamper evidence --------------------------------------------------------------------

    def verify(self) -> ChainReport:
        """Check every replica's chain: hashes, links, gaps (crash records explain theirs), and
        rows purged versus deleted (store.verification)."""
        with self._read() as conn:
            replicas = sorted(
                set(conn.scalars(select(decision_log.c.replica_id).distinct()))
                | set(conn.scalars(select(decision_log_checkpoints.c.replica_id).distinct()))
            )
            return ChainReport(tuple(verify_replica(conn, replica) for replica in replicas))

    # --- retention --------------------------------------------------------------------------

    def purge(
        self, *, older_than: datetime, batch_size: int = 1000, max_batches: int | None = None
    ) -> int:
        """Delete decisions made before `older_than`, oldest first per replica, in batches of
        `batch_size` (one transaction and one checkpoint each); tenants under legal hold keep
        theirs. Returns the number of rows deleted."""
        cutoff = utc(older_than)
        with self._read() as conn:
            replicas = sorted(
                conn.scalars(
                    select(decision_log.c.replica_id).where(decision_log.c.decided_at < cutoff).distinct()
                )
            )
        total = batches = 0
        for replica_id in replicas:
            while max_batches is None or batches < max_batches:
                deleted = self._purge_batch(replica_id, cutoff, batch_size)
                if not deleted:
                    break
                total += deleted
                batches += 1
        return total

    def _purge_batch(self, replica_id: str, cutoff: datetime, batch_size: int) -> int:
        with self._write() as conn:
            if conn.dialect.name == "postgresql" and not conn.scalar(
                select(func.pg_try_advisory_xact_lock(_PURGE_LOCK))
            ):
                return 0
            # Purge a prefix of the chain only: stop before the first decision that is recent.
            first_recent = conn.scalar(
                select(func.min(decision_log.c.seq)).where(
                    decision_log.c.replica_id == replica_id, decision_log.c.decided_at >= cutoff
                )
            )
            held = select(tenant_settings.c.tenant).where(tenant_settings.c.legal_hold.is_(True))
            candidates = (
                select(decision_log.c.id, decision_log.c.seq, decision_log.c.entry_hash)
                .where(
                    decision_log.c.replica_id == replica_id,
                    decision_log.c.decided_at < cutoff,
                    decision_log.c.tenant.not_in(held),
                )
                .order_by(decision_log.c.seq)
                .limit(batch_size)
            )
            if first_recent is not None:
                candidates = candidates.where(decision_log.c.seq < first_recent)
            rows = conn.execute(candidates).all()
            if not rows:
                return 0
            result = conn.execute(
                delete(decision_log).where(decision_log.c.id.in_([row.id for row in rows]))
            )
            if result.rowcount != len(rows):
                raise StoreError("decision log rows vanished during a purge; try again")
            floor = conn.execute(
                select(decision_log_checkpoints.c.up_to_seq, decision_log_checkpoints.c.last_hash)
                .where(decision_log_checkpoints.c.replica_id == replica_id)
                .order_by(decision_log_checkpoints.c.up_to_seq.desc())
                .limit(1)
            ).first()
            up_to, last_hash = int(rows[-1].seq), str(rows[-1].entry_hash)
            if floor is not None and int(floor.up_to_seq) > up_to:
                up_to, last_hash = int(floor.up_to_seq), str(floor.last_hash)
            conn.execute(
                insert(decision_log_checkpoints).values(
                    replica_id=replica_id,
                    up_to_seq=up_to,
                    last_hash=last_hash,
                    purged_rows=len(rows),
                    created_at=datetime.now(UTC),
                )
            )
            return len(rows)

    def set_legal_hold(self, tenant: str, hold: bool) -> None:
        """Keep (or stop keeping) every decision of `tenant` out of retention purges."""
        with self._write() as conn:
            if conn.dialect.name == "postgresql":
                statement: Any = postgresql_insert(tenant_settings)
            else:
                statement = sqlite_insert(tenant_settings)
            statement = statement.values(tenant=tenant, legal_hold=hold).on_conflict_do_update(
                index_elements=["tenant"], set_={"legal_hold": hold}
            )
            conn.execute(statement)

    def legal_holds(self) -> set[str]:
        with self._read() as conn:
            return set(
                conn.scalars(
                    select(tenant_settings.c.tenant).where(tenant_settings.c.legal_hold.is_(True))
                )
            )

    # --- admin audit ------------------------------------------------------------------------

    def record_admin_event(
        self,
        conn: Connection,
        *,
        action: str,
        policy_set: str,
        version: int | None,
        actor: str,
        detail: Mapping[str, Any],
    ) -> None:
        """Write an admin audit row on `conn`, inside the caller's transaction, so the change and
        its audit row commit (or roll back) together."""
        conn.execute(
            insert(admin_audit).values(
                created_at=datetime.now(UTC),
                action=action,
                policy_set=policy_set,
                version=version,
                actor=actor,
                detail=json.dumps(dict(detail), sort_keys=True, default=str),
            )
        )

    def admin_events(self, limit: int = 100) -> list[AdminEvent]:
        """The latest admin audit rows, newest first."""
        with self._read() as conn:
            rows = conn.execute(select(admin_audit).order_by(admin_audit.c.id.desc()).limit(limit))
            return [
                AdminEvent(
                    id=row.id,
                    created_at=utc(row.created_at),
                    action=row.action,
                    policy_set=row.policy_set,
                    version=row.version,
                    actor=row.actor,
                    detail=json.loads(row.detail),
                )
                for row in rows
            ]

    def _read(self) -> Guarded:
        return Guarded(self._engine.connect())

    def _write(self) -> Guarded:
        return Guarded(self._engine.begin())


def _decisions(row: Any) -> list[StoredDecision]:
    """The decisions of a row: itself, or the items of a group row in their order."""
    if not row.item_count:
        return []  # a crash gap record holds no decision
    stored = _stored(row)
    if not row.items:
        return [stored]
    prefix = stored.decision_id[:GROUP_PREFIX_LENGTH]
    shared = stored.hashed_attributes
    return [
        dataclasses.replace(
            stored,
            decision_id=prefix + suffix,
            action=action,
            resource=resource,
            allowed=bool(allowed),
            rule=rule,
            reason=reason,
            request_id=request_id,
            hashed_attributes={**shared, **json.loads(hashed)} if hashed else shared,
            item_index=index,
        )
        for index, (suffix, action, resource, allowed, rule, reason, request_id, hashed) in enumerate(
            json.loads(row.items)
        )
    ]


def _stored(row: Any) -> StoredDecision:
    return StoredDecision(
        decision_id=row.decision_id,
        replica_id=row.replica_id,
        seq=int(row.seq),
        decided_at=utc(row.decided_at),
        policy_set=row.policy_set,
        policy_version=int(row.policy_version),
        tenant=row.tenant,
        subject=row.subject,
        actor=row.actor,
        caller=row.caller,
        action=row.action,
        resource=row.resource,
        allowed=bool(row.allowed),
        rule=row.rule,
        reason=row.reason,
        request_id=row.request_id,
        latency_us=int(row.latency_us),
        key_id=row.key_id,
        attributes_ciphertext=row.attributes,
        hashed_attributes=json.loads(row.hashed_attributes),
        prev_hash=row.prev_hash,
        entry_hash=row.entry_hash,
    )
