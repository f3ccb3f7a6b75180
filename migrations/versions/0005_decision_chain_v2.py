"""Decision log chain format 2: entry hashes over a length-prefixed text instead of JSON.

The writer computes one hash per decision; the JSON encoding of format 1 cost several times
what the hash itself does. The table does not change. Upgrading re-chains the rows already
stored (and downgrading chains them back to format 1), replica by replica in seq order, but only
after checking every row against its format-1 (or format-2) hash: an edited row is never given a
fresh valid hash; the migration stops instead. Purge checkpoints keep their hashes: a row whose
predecessor was purged keeps its link to the checkpoint's hash.

Run it with the servers stopped and their spill files replayed (a clean shutdown with the
database up leaves none): rows still in a spill file carry the old format.

Both encodings are written out here, as they were at this revision, so this file never changes
meaning when the code does.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_CHAINED = (
    "replica_id", "seq", "decision_id", "decided_at", "policy_set", "policy_version", "tenant",
    "subject", "actor", "caller", "action", "resource", "allowed", "rule", "reason", "request_id",
    "latency_us", "key_id", "attributes", "hashed_attributes",
)
_INTEGERS = ("seq", "policy_version", "latency_us")
_PAGE = 2000


def upgrade() -> None:
    _rechain(_format_1, _format_2)


def downgrade() -> None:
    _rechain(_format_2, _format_1)


def _values(row: Mapping[str, Any]) -> list[Any]:
    values = []
    for name in _CHAINED:
        value = row[name]
        if name == "decided_at":
            moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
            moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
            value = moment.isoformat(timespec="microseconds")
        elif name == "allowed":
            value = bool(value)
        elif name in _INTEGERS:
            value = int(value)
        values.append(value)
    return values


def _format_1(prev_hash: str, row: Mapping[str, Any]) -> str:
    text = json.dumps([prev_hash, *_values(row)], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _format_2(prev_hash: str, row: Mapping[str, Any]) -> str:
    parts = ["v2|"]
    for value in [prev_hash, *_values(row)]:
        if isinstance(value, bool):
            parts.append("1" if value else "0")
        elif isinstance(value, int):
            parts.append(f"{value:d}.")
        else:
            parts.append(f"{len(value)}:{value}")
    return hashlib.sha256("".join(parts).encode("utf-8")).hexdigest()


def _rechain(old: Callable[[str, Mapping[str, Any]], str], new: Callable[[str, Mapping[str, Any]], str]) -> None:
    conn = op.get_bind()
    postgresql = conn.dialect.name == "postgresql"
    replicas = [r for (r,) in conn.execute(sa.text("SELECT DISTINCT replica_id FROM decision_log"))]
    if not replicas:
        return
    # decision_log refuses UPDATE (migration 0004); lift that for this transaction only.
    if postgresql:
        op.execute("DROP TRIGGER decision_log_immutable ON decision_log")
    else:
        op.execute("DROP TRIGGER decision_log_no_update")
    columns = ", ".join(("id", "prev_hash", "entry_hash", *_CHAINED))
    page = sa.text(
        f"SELECT {columns} FROM decision_log WHERE replica_id = :replica AND seq > :after "
        "ORDER BY seq LIMIT :limit"
    )
    change = sa.text("UPDATE decision_log SET prev_hash = :prev_hash, entry_hash = :entry_hash WHERE id = :id")
    for replica in replicas:
        after, previous = 0, None  # previous: (seq, new hash) of the row before
        while True:
            rows = [row._mapping for row in conn.execute(page, {"replica": replica, "after": after, "limit": _PAGE})]
            updates = []
            for row in rows:
                if old(row["prev_hash"], row) != row["entry_hash"]:
                    raise RuntimeError(
                        f"decision_log: replica {replica!r} seq {row['seq']} does not match its hash; "
                        "not re-chaining an edited log (run `policyctl decisions verify`)"
                    )
                seq = int(row["seq"])
                # The first row after a purge keeps its link to the checkpoint's hash.
                prev_hash = previous[1] if previous is not None and previous[0] == seq - 1 else row["prev_hash"]
                entry_hash = new(prev_hash, row)
                updates.append({"id": row["id"], "prev_hash": prev_hash, "entry_hash": entry_hash})
                previous = (seq, entry_hash)
            if updates:
                conn.execute(change, updates)
            if len(rows) < _PAGE:
                break
            after = int(rows[-1]["seq"])
    if postgresql:
        op.execute(
            "CREATE TRIGGER decision_log_immutable BEFORE UPDATE ON decision_log "
            "FOR EACH ROW EXECUTE FUNCTION policy_engine_refuse_change()"
        )
    else:
        op.execute(
            "CREATE TRIGGER decision_log_no_update BEFORE UPDATE ON decision_log "
            "BEGIN SELECT RAISE(ABORT, 'decision_log rows are immutable'); END"
        )
