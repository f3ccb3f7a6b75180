"""Where the decision log's chain continues after a restart, and when a crash gap is recorded."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from policy_engine.audit.position import PositionFile, SavedPosition, chain_start
from policy_engine.store.chain import GENESIS_HASH
from policy_engine.store.decision_log import ReplicaPosition

AT = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)


def saved(seq: int, first_in_doubt: int | None, decisions: int = 40) -> SavedPosition:
    return SavedPosition(ReplicaPosition(seq, f"h{seq}"), first_in_doubt, decisions, AT)


def test_a_batch_in_doubt_that_the_database_lacks_is_a_crash_gap() -> None:
    """The database ends before the batch the writer was inserting: its numbers are not reused,
    and the gap is recorded (lost with the process, or re-sent by the serving side)."""
    start = chain_start(ReplicaPosition(100, "h100"), database_known=True, spilled=None,
                        saved=saved(120, 101), resent=False)
    assert start is not None and start.position == ReplicaPosition(120, "h120")
    assert start.gap is not None
    assert (start.gap.first, start.gap.last, start.gap.decisions, start.gap.resent) == (101, 120, 40, False)
    assert start.gap.describe() == "seq 101..120: 40 entries lost in a crash at 2026-12-07T02:00:00.000000+00:00"


def test_a_batch_found_stored_or_spilled_is_no_gap() -> None:
    """When the database or the spill file holds the batch, the chain goes on after it."""
    for stored, spilled in ((ReplicaPosition(120, "h120"), None), (ReplicaPosition(100, "h100"), ReplicaPosition(120, "s"))):
        start = chain_start(stored, database_known=True, spilled=spilled, saved=saved(120, 101), resent=False)
        assert start is not None and start.gap is None and start.position.seq == 120


def test_with_the_database_unreachable_the_whole_batch_is_in_doubt() -> None:
    """Without the database the batch may or may not be stored: the record names all of it
    (verify then finds its rows, or reports them as the crash's)."""
    start = chain_start(None, database_known=False, spilled=None, saved=saved(120, 101), resent=True)
    assert start is not None and start.gap is not None and (start.gap.first, start.gap.last) == (101, 120)


def test_rows_missing_before_the_batch_in_doubt_are_not_explained() -> None:
    """Only the batch the position file names can be a crash's: rows deleted before it stay a
    gap that verify reports as tampering."""
    start = chain_start(ReplicaPosition(80, "h80"), database_known=True, spilled=None,
                        saved=saved(120, 101), resent=False)
    assert start is not None and start.gap is not None and (start.gap.first, start.gap.last) == (101, 120)


def test_nothing_known_means_wait_and_a_new_replica_starts_at_genesis() -> None:
    """No database answer and nothing local: wait. A database with no rows: seq 1 next."""
    assert chain_start(None, database_known=False, spilled=None, saved=None, resent=False) is None
    start = chain_start(None, database_known=True, spilled=None, saved=None, resent=False)
    assert start is not None and start.position == ReplicaPosition(0, GENESIS_HASH) and start.gap is None


def test_the_position_file_round_trips_and_a_torn_one_is_ignored(tmp_path: Path) -> None:
    """What the writer saves before an insert reads back; an unreadable file counts as absent."""
    positions = PositionFile(tmp_path / "r.position")
    assert positions.read() is None
    positions.save(ReplicaPosition(7, "h7"), first_in_doubt=5, decisions=3)
    read = positions.read()
    assert read is not None and (read.position, read.first_in_doubt, read.decisions) == (ReplicaPosition(7, "h7"), 5, 3)
    positions.save(ReplicaPosition(7, "h7"))
    assert positions.read().first_in_doubt is None  # type: ignore[union-attr]
    (tmp_path / "r.position").write_text('{"seq": 7')
    assert positions.read() is None
