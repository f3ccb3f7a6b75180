"""The spill file: decision-log rows the database could not take yet, on local disk.

One append-only file per replica, one JSON row per line, fsynced after every appended batch.
Rows are read back from a replay offset in chunks; the file is truncated only once every row in
it has been committed to the database (`commit_through` reaching the end), so a crash at any
point replays rows that may already be stored, never skips one. Re-inserting is harmless: the
database skips rows whose decision_id it already has.

A process holds an exclusive lock on `<file>.lock` while it uses the file: two processes with
the same replica id and spill directory would otherwise fork the chain.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from policy_engine.audit.errors import AuditError
from policy_engine.store.decision_log import ReplicaPosition, canonical_time

__all__ = ["SpillFile"]


class SpillFile:
    """Durable, ordered storage of rows waiting for the database (used by one writer thread)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = open(path.with_name(path.name + ".lock"), "a")  # noqa: SIM115 - held open
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self._lock.close()
            raise AuditError(f"{path} is in use by another process with the same replica id") from exc
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        self._offset = 0
        self._end = 0  # the file's size, tracked here (only this object writes the file)
        self._last: ReplicaPosition | None = None
        self._rows = 0
        self._recover()

    @property
    def pending(self) -> bool:
        """True while some row in the file is not yet known to be in the database."""
        return self._end > self._offset

    @property
    def rows(self) -> int:
        """Rows in the file (replayed or not) since it was last truncated."""
        return self._rows

    @property
    def last_position(self) -> ReplicaPosition | None:
        """seq and hash of the last row in the file, if it holds any."""
        return self._last

    def append(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Append `rows` and fsync; on failure the file is left as it was and OSError raised."""
        if not rows:
            return
        data = b"".join(_encode(row) for row in rows)
        size = self._end
        try:
            written = os.write(self._fd, data)
            if written != len(data):
                raise OSError(f"short write to {self.path}")
            os.fsync(self._fd)
        except OSError:
            try:
                os.ftruncate(self._fd, size)
            except OSError:
                pass
            raise
        self._end = size + len(data)
        self._rows += len(rows)
        last = rows[-1]
        self._last = ReplicaPosition(int(last["seq"]), str(last["entry_hash"]))

    def read_chunk(self, max_rows: int) -> tuple[list[dict[str, Any]], int]:
        """Up to `max_rows` rows after the replay offset, and the offset just past them."""
        rows: list[dict[str, Any]] = []
        offset = self._offset
        with open(self.path, "rb") as reader:
            reader.seek(offset)
            while len(rows) < max_rows:
                line = reader.readline()
                if not line.endswith(b"\n"):
                    break
                rows.append(_decode(line))
                offset += len(line)
        return rows, offset

    def decision_ids_after(self, seq: int) -> set[str]:
        """The decision ids of the rows in the file after chain position `seq`."""
        found = set()
        with open(self.path, "rb") as reader:
            for line in reader:
                if not line.endswith(b"\n"):
                    break
                row = json.loads(line)
                if int(row["seq"]) > seq:
                    found.add(str(row["decision_id"]))
        return found

    def commit_through(self, offset: int) -> None:
        """Rows before `offset` are in the database; once that is all of them, empty the file."""
        self._offset = offset
        if offset >= self._end:
            os.ftruncate(self._fd, 0)
            os.fsync(self._fd)
            self._offset = self._end = 0
            self._rows = 0

    def close(self) -> None:
        os.close(self._fd)
        fcntl.flock(self._lock, fcntl.LOCK_UN)
        self._lock.close()

    def _recover(self) -> None:
        """Count the rows left by an earlier process; cut a torn last line (a crash mid-write)."""
        good = 0
        with open(self.path, "rb") as reader:
            for line in reader:
                if not line.endswith(b"\n"):
                    break
                try:
                    row = _decode(line)
                except ValueError:
                    break
                good += len(line)
                self._rows += 1
                self._last = ReplicaPosition(int(row["seq"]), str(row["entry_hash"]))
        if good != os.fstat(self._fd).st_size:
            os.ftruncate(self._fd, good)
            os.fsync(self._fd)
        self._end = good


def _encode(row: Mapping[str, Any]) -> bytes:
    document = dict(row)
    document["decided_at"] = canonical_time(document["decided_at"])
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


def _decode(line: bytes) -> dict[str, Any]:
    row = json.loads(line)
    if not isinstance(row, dict) or "seq" not in row or "entry_hash" not in row:
        raise ValueError("not a decision-log row")
    row["decided_at"] = datetime.fromisoformat(row["decided_at"])
    return row
