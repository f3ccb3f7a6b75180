"""Where a replica's chain continues after a restart, and the crash gap the restart must record.

The writer saves its position to a small file before each insert: the end of the batch it is
about to send, and where that batch starts ("in doubt" until it is known stored). After a crash
the database may or may not hold that batch (an insert cut short, or a commit still on its way),
so its sequence numbers can never be given out again: the chain goes on after the saved
position, and when the database (or the spill file) does not show the batch stored, the first
row written is a crash gap record naming its sequence numbers (store.chain.CrashGap), sealed
into the chain, so `verify` reports a crash instead of tampering and checks every later row.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from policy_engine.store.chain import GENESIS_HASH, CrashGap
from policy_engine.store.decision_log import ReplicaPosition

__all__ = ["ChainStart", "PositionFile", "SavedPosition", "chain_start"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SavedPosition:
    """The position file: the chain's end after the last batch sent; `first_in_doubt` the first
    seq of that batch while it is not known stored (None once it is); `decisions` in it."""

    position: ReplicaPosition
    first_in_doubt: int | None
    decisions: int
    saved_at: datetime


class PositionFile:
    """`<replica>.position` beside the spill file: JSON, replaced atomically, not fsynced (a
    power loss can lose the newest version; the database and spill file still bound the chain)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> SavedPosition | None:
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
            first = document.get("first_in_doubt")
            saved_at = document.get("saved_at")
            return SavedPosition(
                ReplicaPosition(int(document["seq"]), str(document["hash"])),
                None if first is None else int(first),
                int(document.get("decisions", 0)),
                datetime.fromisoformat(saved_at) if saved_at else _modified(self.path),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, position: ReplicaPosition, *, first_in_doubt: int | None = None, decisions: int = 0) -> None:
        """Record `position`; with `first_in_doubt`, the batch from that seq to `position` is
        about to be sent and not yet known stored."""
        temporary = self.path.with_name(self.path.name + ".tmp")
        document = {"seq": position.seq, "hash": position.hash, "first_in_doubt": first_in_doubt,
                    "decisions": decisions, "saved_at": datetime.now(UTC).isoformat()}
        try:
            temporary.write_text(json.dumps(document))
            os.replace(temporary, self.path)
        except OSError as exc:
            log.warning("decision log: cannot write %s (%s)", self.path, exc)


@dataclass(frozen=True)
class ChainStart:
    """Where the chain continues (the next row gets `position.seq + 1`), and the crash gap to
    record there first, if any."""

    position: ReplicaPosition
    gap: CrashGap | None


def chain_start(
    stored: ReplicaPosition | None,
    *,
    database_known: bool,
    spilled: ReplicaPosition | None,
    saved: SavedPosition | None,
    resent: bool,
) -> ChainStart | None:
    """Where to continue, from the database's end of the chain (`stored`, if `database_known`),
    the spill file's last row and the position file. None: nothing is known (the database does
    not answer and there is no local position), so the writer must wait for the database.
    `resent`: the serving process re-sends what the crashed writer held (see CrashGap)."""
    if not database_known and spilled is None and saved is None:
        return None
    known = [p for p in (stored, spilled) if p is not None]
    # On a tie the database wins: it is where the chain is verified (and re-chained by a
    # migration that changes the hash format, which a local file knows nothing of).
    confirmed = max(known, key=lambda p: p.seq, default=ReplicaPosition(0, GENESIS_HASH))
    if saved is None or saved.position.seq <= confirmed.seq:
        return ChainStart(confirmed, None)
    if saved.first_in_doubt is None:
        # stored when saved, but the database does not answer now: go on after it
        return ChainStart(saved.position, None)
    first = max(saved.first_in_doubt, confirmed.seq + 1) if database_known else saved.first_in_doubt
    gap = CrashGap(first, saved.position.seq, saved.decisions, saved.saved_at, resent)
    return ChainStart(saved.position, gap)


def _modified(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)
