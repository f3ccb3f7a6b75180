"""`verify`: check every replica's chain of the decision log, and say what is wrong and where.

A row whose hash does not match is "edited"; a row that does not follow the one before it is a
"broken_link"; sequence numbers missing after the purge checkpoint are a "gap" (tampering, or
rows lost without a record); rows at or below the checkpoint that no purge accounts for are
"unaccounted". Sequence numbers missing right before a crash gap record, exactly the ones it
names, are a crash, reported as such (store.chain.CrashGap), not as a problem. After a problem
the check goes on from the next row, so every later row is still checked.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from policy_engine.store.audit_tables import decision_log, decision_log_checkpoints
from policy_engine.store.chain import GENESIS_HASH, CrashGap, entry_hash

__all__ = ["ChainProblem", "ChainReport", "ReplicaChain", "verify_replica"]

# Problems listed per replica (the count of the rest is still given).
_LISTED = 50


@dataclass(frozen=True)
class ChainProblem:
    """Something wrong in a replica's chain.

    kind: "gap" (rows missing after the purge checkpoint, not explained by a crash record),
    "edited" (a row does not match its hash), "broken_link" (a row does not follow the one
    before it), or "unaccounted" (fewer rows at or below the purge checkpoint than the
    checkpoints say were kept).
    """

    kind: str
    seq: int
    decision_id: str | None
    detail: str

    def __str__(self) -> str:
        where = f"seq {self.seq}" + (f" (decision {self.decision_id})" if self.decision_id else "")
        return f"{self.kind} at {where}: {self.detail}"


@dataclass(frozen=True)
class ReplicaChain:
    """One replica's chain: `problem` is the first of `problems` (the first `_LISTED` of
    `problem_count`); `crash_gaps` are the gaps its crash records explain."""

    replica_id: str
    rows_checked: int
    last_seq: int
    purged_up_to: int
    problem: ChainProblem | None
    problems: tuple[ChainProblem, ...] = ()
    problem_count: int = 0
    crash_gaps: tuple[CrashGap, ...] = ()


@dataclass(frozen=True)
class ChainReport:
    """The result of `verify`: one chain per replica."""

    replicas: tuple[ReplicaChain, ...]

    @property
    def ok(self) -> bool:
        return all(chain.problem is None for chain in self.replicas)

    @property
    def rows_checked(self) -> int:
        return sum(chain.rows_checked for chain in self.replicas)

    def lines(self) -> list[str]:
        """Human-readable report (for `policyctl decisions verify`): a line per replica, then
        an indented line per crash gap and per further problem."""
        out = []
        for chain in self.replicas:
            if chain.problem is None:
                gaps = len(chain.crash_gaps)
                state = "ok" + (f", {gaps} crash gap{'s' if gaps > 1 else ''}" if gaps else "")
            else:
                more = chain.problem_count - 1
                state = f"PROBLEM {chain.problem}" + (f" (and {more} more)" if more else "")
            purged = f", purged up to seq {chain.purged_up_to}" if chain.purged_up_to else ""
            out.append(
                f"{chain.replica_id}: {chain.rows_checked} rows checked, "
                f"last seq {chain.last_seq}{purged}: {state}"
            )
            out.extend(f"  crash gap: {gap.describe()}" for gap in chain.crash_gaps)
            out.extend(f"  PROBLEM {problem}" for problem in chain.problems[1:])
            if chain.problem_count > len(chain.problems):
                out.append(f"  ... {chain.problem_count - len(chain.problems)} more problems")
        return out


def verify_replica(conn: Connection, replica_id: str) -> ReplicaChain:
    """Check one replica's chain: hashes, links, gaps (crash records explain theirs), and rows
    purged versus deleted."""
    checkpoint = conn.execute(
        select(decision_log_checkpoints.c.up_to_seq, decision_log_checkpoints.c.last_hash)
        .where(decision_log_checkpoints.c.replica_id == replica_id)
        .order_by(decision_log_checkpoints.c.up_to_seq.desc(), decision_log_checkpoints.c.id.desc())
        .limit(1)
    ).first()
    purged_total = int(
        conn.scalar(
            select(func.coalesce(func.sum(decision_log_checkpoints.c.purged_rows), 0)).where(
                decision_log_checkpoints.c.replica_id == replica_id
            )
        )
        or 0
    )
    floor = int(checkpoint.up_to_seq) if checkpoint is not None else 0
    expected_seq = floor + 1
    expected_prev = str(checkpoint.last_hash) if checkpoint is not None else GENESIS_HASH
    kept_below = 0
    checked = 0
    last_seq = floor
    previous: tuple[int, str] | None = None
    problems: list[ChainProblem] = []
    count = 0
    gaps: list[CrashGap] = []

    def report(problem: ChainProblem) -> None:
        nonlocal count
        count += 1
        if len(problems) < _LISTED:
            problems.append(problem)

    for row in _rows_by_seq(conn, replica_id):
        checked += 1
        seq, decision_id = int(row["seq"]), str(row["decision_id"])
        last_seq = max(last_seq, seq)
        stored_hash = str(row["entry_hash"])
        if entry_hash(row) != stored_hash:
            report(ChainProblem("edited", seq, decision_id, "the row does not match its hash"))
        elif seq <= floor:
            # kept by a legal hold while older rows were purged: only adjacent links are known
            kept_below += 1
            if previous is not None and previous[0] == seq - 1 and row["prev_hash"] != previous[1]:
                report(ChainProblem("broken_link", seq, decision_id, "the row does not follow the previous row"))
        elif seq != expected_seq:
            gap = _crash_gap(row)
            missing = f"seq {expected_seq}" if seq == expected_seq + 1 else f"seq {expected_seq}..{seq - 1}"
            if gap is not None and (gap.first, gap.last) == (expected_seq, seq - 1):
                gaps.append(gap)  # the rows its record names, and only those: a crash
            elif gap is not None and gap.last == seq - 1 and gap.first < expected_seq:
                report(ChainProblem(
                    "gap", expected_seq, None,
                    f"{missing} missing before a crash record of seq {gap.first}..{gap.last}, whose "
                    "other rows are stored (a batch is stored whole: rows were deleted)",
                ))
            else:
                report(ChainProblem("gap", expected_seq, None, f"{missing} missing before decision {decision_id}"))
        elif row["prev_hash"] != expected_prev:
            report(ChainProblem("broken_link", seq, decision_id, "the row does not follow the previous row"))
        if seq > floor:
            expected_seq = seq + 1
            expected_prev = stored_hash
        previous = (seq, stored_hash)
    if floor and kept_below + purged_total != floor:
        report(ChainProblem(
            "unaccounted",
            floor,
            None,
            f"{floor - kept_below - purged_total} rows at or below the purge checkpoint "
            "were deleted without a purge",
        ))
    return ReplicaChain(
        replica_id, checked, last_seq, floor, problems[0] if problems else None, tuple(problems), count,
        tuple(gaps),
    )


def _crash_gap(row: Mapping[str, Any]) -> CrashGap | None:
    if int(row["item_count"]) != 0:
        return None
    return CrashGap.from_json(str(row["items"]))


def _rows_by_seq(conn: Connection, replica_id: str, page: int = 5000) -> Iterator[Mapping[str, Any]]:
    """Every row of a replica in seq order, read a page at a time (keyset pagination)."""
    after = 0
    while True:
        rows = conn.execute(
            select(decision_log)
            .where(decision_log.c.replica_id == replica_id, decision_log.c.seq > after)
            .order_by(decision_log.c.seq)
            .limit(page)
        ).all()
        yield from (row._mapping for row in rows)
        if len(rows) < page:
            return
        after = int(rows[-1].seq)
