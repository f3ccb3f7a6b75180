"""SpillFile: fsynced appends, replay offsets, truncation only when everything is committed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from policy_engine.audit import AuditError
from policy_engine.audit.spill import SpillFile


def row(seq: int) -> dict:
    return {"seq": seq, "entry_hash": f"{seq:064x}", "decision_id": f"d{seq}",
            "decided_at": datetime(2026, 1, 1, tzinfo=UTC)}


def test_rows_read_back_in_order_and_file_empties_when_committed(tmp_path: Path) -> None:
    """Rows come back in order in chunks; the file is emptied only after the last chunk is committed."""
    spill = SpillFile(tmp_path / "r.spill")
    spill.append([row(1), row(2), row(3)])
    chunk, end = spill.read_chunk(2)
    assert [r["seq"] for r in chunk] == [1, 2] and chunk[0]["decided_at"] == datetime(2026, 1, 1, tzinfo=UTC)
    spill.commit_through(end)
    assert spill.pending and (tmp_path / "r.spill").stat().st_size > 0
    chunk, end = spill.read_chunk(2)
    assert [r["seq"] for r in chunk] == [3]
    spill.commit_through(end)
    assert not spill.pending and (tmp_path / "r.spill").stat().st_size == 0
    spill.close()


def test_reopened_file_keeps_unreplayed_rows_and_position(tmp_path: Path) -> None:
    """A new process sees the rows left behind, from the start, and the last position."""
    first = SpillFile(tmp_path / "r.spill")
    first.append([row(1), row(2)])
    first.commit_through(first.read_chunk(1)[1])  # replayed one, then stopped before truncating
    first.close()
    second = SpillFile(tmp_path / "r.spill")
    assert second.pending and second.rows == 2
    assert second.last_position is not None and second.last_position.seq == 2
    assert [r["seq"] for r in second.read_chunk(10)[0]] == [1, 2]
    second.close()


def test_torn_last_line_is_cut(tmp_path: Path) -> None:
    """A line half-written by a crash is dropped; the whole rows before it stay."""
    first = SpillFile(tmp_path / "r.spill")
    first.append([row(1)])
    first.close()
    with open(tmp_path / "r.spill", "ab") as handle:
        handle.write(b'{"seq": 2, "entry_')
    second = SpillFile(tmp_path / "r.spill")
    assert second.rows == 1 and [r["seq"] for r in second.read_chunk(10)[0]] == [1]
    second.close()


def test_one_process_per_file(tmp_path: Path) -> None:
    """A second SpillFile on the same path is refused while the first is open."""
    first = SpillFile(tmp_path / "r.spill")
    with pytest.raises(AuditError, match="in use"):
        SpillFile(tmp_path / "r.spill")
    first.close()
    SpillFile(tmp_path / "r.spill").close()
