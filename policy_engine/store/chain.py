"""The hash chain of the decision log: what each row's hash covers, in what text form.

Each row carries the replica that wrote it, a sequence number that grows by one per row of that
replica (starting at 1), the hash of the previous row of the replica (`GENESIS_HASH` for the
first) and its own hash over that previous hash and every stored column (`entry_hash`, chain
format 2 since migration 0005).

A crash gap record is a row of the chain that holds no decision (`item_count` 0): the writer,
restarting after a crash, seals into the chain which sequence numbers the crash left unwritten
(`CrashGap`, stored as JSON in the row's `items`, so its hash covers it). `verify` then reports
that gap as a crash and checks the rows after it, where a row deleted without such a record
is a gap that says the log was tampered with or is incomplete.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from policy_engine.store.audit_tables import utc

__all__ = [
    "CHAINED_COLUMNS",
    "GENESIS_HASH",
    "CrashGap",
    "canonical_time",
    "chain_hash",
    "entry_hash",
]

GENESIS_HASH = "0" * 64

# The columns covered by `entry_hash`, in hashing order (after the previous entry's hash).
# The columns covered by `entry_hash`, in hashing order (after the previous entry's hash).
CHAINED_COLUMNS = (
    "replica_id",
    "seq",
    "decision_id",
    "decided_at",
    "policy_set",
    "policy_version",
    "tenant",
    "subject",
    "actor",
    "caller",
    "action",
    "resource",
    "allowed",
    "rule",
    "reason",
    "request_id",
    "latency_us",
    "key_id",
    "attributes",
    "hashed_attributes",
    "items",
    "item_count",
)



def canonical_time(moment: datetime | str) -> str:
    """The one text form of a decision time that is hashed: UTC, microseconds, ISO 8601."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is not UTC:
        moment = utc(moment)
    return moment.isoformat(timespec="microseconds")


def entry_hash(row: Mapping[str, Any]) -> str:
    """sha256 over the previous entry's hash and the chained columns of `row`."""
    values: list[Any] = [row["prev_hash"], *[row[name] for name in CHAINED_COLUMNS]]
    values[_DECIDED_AT] = canonical_time(values[_DECIDED_AT])
    values[_ALLOWED] = bool(values[_ALLOWED])
    for index in _INTEGERS:
        values[index] = int(values[index])
    return chain_hash(values)


def chain_hash(values: Sequence[Any]) -> str:
    """`entry_hash` of values already in canonical form: [prev_hash, *CHAINED_COLUMNS], the
    time as `canonical_time` text, `allowed` a bool, seq/policy_version/latency_us ints.

    The hashed text (chain format 2, migration 0005) is "v2|" then each value in that order:
    a text as <length in characters>:<text>, an integer as <decimal>. (ending in a dot), the
    bool as 1 or 0. Every value's end is known from its start, so no two rows share a text.
    A group row (non-empty `items`, migration 0006) appends items and item_count the same way;
    a single decision's text ends at hashed_attributes, as it did before groups existed.
    (One f-string: a generic encoder, such as JSON, costs several times more per row.)
    """
    (prev, replica, seq, decision_id, moment, policy_set, policy_version, tenant, subject, actor,
     caller, action, resource, allowed, rule, reason, request_id, latency_us, key_id, attributes,
     hashed, items, item_count) = values
    text = (
        f"v2|{len(prev)}:{prev}{len(replica)}:{replica}{seq:d}.{len(decision_id)}:{decision_id}"
        f"{len(moment)}:{moment}{len(policy_set)}:{policy_set}{policy_version:d}."
        f"{len(tenant)}:{tenant}{len(subject)}:{subject}{len(actor)}:{actor}{len(caller)}:{caller}"
        f"{len(action)}:{action}{len(resource)}:{resource}{allowed:d}{len(rule)}:{rule}"
        f"{len(reason)}:{reason}{len(request_id)}:{request_id}{latency_us:d}.{len(key_id)}:{key_id}"
        f"{len(attributes)}:{attributes}{len(hashed)}:{hashed}"
    )
    if items:
        text += f"{len(items)}:{items}{item_count:d}."
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# Positions in entry_hash's value list (the previous hash comes first).
_DECIDED_AT = 1 + CHAINED_COLUMNS.index("decided_at")
_ALLOWED = 1 + CHAINED_COLUMNS.index("allowed")
_INTEGERS = tuple(1 + CHAINED_COLUMNS.index(n) for n in ("seq", "policy_version", "latency_us", "item_count"))


@dataclass(frozen=True)
class CrashGap:
    """Sequence numbers `first`..`last` (`rows` rows holding `decisions` decisions) that a writer
    gave to a batch and then crashed, at about `crashed_at`, before the batch was known to be
    stored. `resent`: the serving process still held those decisions and handed them to the
    writer that took over, which stored them after this record; otherwise they are lost."""

    first: int
    last: int
    decisions: int
    crashed_at: datetime
    resent: bool

    @property
    def rows(self) -> int:
        return self.last - self.first + 1

    def to_json(self) -> str:
        return json.dumps({_GAP_KEY: {
            "first": self.first, "last": self.last, "decisions": self.decisions,
            "crashed_at": canonical_time(self.crashed_at), "resent": self.resent,
        }}, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> CrashGap | None:
        """The gap a record's `items` text describes; None when it is not a gap record."""
        try:
            document = json.loads(text)
            gap = document[_GAP_KEY]
            return cls(int(gap["first"]), int(gap["last"]), int(gap["decisions"]),
                       datetime.fromisoformat(gap["crashed_at"]).astimezone(UTC), bool(gap["resent"]))
        except (ValueError, KeyError, TypeError):
            return None

    def describe(self) -> str:
        span = f"seq {self.first}" if self.first == self.last else f"seq {self.first}..{self.last}"
        moment = canonical_time(self.crashed_at)
        if self.resent:
            return (f"{span} never stored: the writer crashed at {moment} holding {self.decisions} "
                    "entries, which the serving process re-sent (stored after this gap)")
        return f"{span}: {self.decisions} entries lost in a crash at {moment}"


_GAP_KEY = "crash_gap"
