"""Audit trail: every decision recorded, nothing acknowledged lost.

The service builds a `DecisionRecord` per decision and hands it to an `AuditSink`:
`NullSink` when audit is off, `DecisionLog` otherwise (`DecisionLogProcess` runs it in a child
process). `record` only puts the entry on a bounded in-memory queue, `record_many` several
entries at once, `record_group` a BatchCheck's decisions as one `DecisionGroup` (the bound
counts decisions; a group is stored as one row); a background thread protects the attributes
(`AttributeProtector`: AES-GCM with a key id per row, or a keyed hash per configured attribute;
credentials redacted first), chains the entries (per-replica `seq`, hash over the previous
entry) and batches them into the database, or into an fsynced local spill file while the
database is slow or down, replaying it exactly once (insert-if-absent by decision id) when the
database answers again. `Retention` purges old decisions except under legal hold.

Durability, precisely
---------------------
* Clean shutdown (`close()`, on SIGTERM): every accepted entry ends in the database or in the
  fsynced spill file, which the next start replays.
* Database outage: entries go to the spill file; none is lost, none is stored twice.
* Hard crash (kill -9, power loss): at most ``queue_size`` entries waiting in memory plus the
  one batch (``batch_size`` rows; a group of decisions is one row) the writer is holding before
  its insert commits or its spill append is fsynced. With the defaults: 10,000 entries waiting,
  and a batch of at most 10,000 (the queue's bound in decisions).
* When an entry can be kept neither in the queue (full) nor, later, in the database or the
  spill file, `on_loss` decides: "count" (default) keeps deciding and counts the entry in
  `stats.lost`; "fail_closed" makes `record` raise `AuditUnavailableError`, and the service
  refuses the decision.
* A replica that starts with the database unreachable and no spill or position file of its own
  (a new replica, or a wiped spill directory) waits for the database before it writes, because
  it cannot know where its chain continues; meanwhile entries wait in the queue.

Each replica needs its own `replica_id` and spill file (a lock file enforces this per
directory); two processes sharing one replica id would fork its chain.
"""

from policy_engine.audit.errors import (
    AttributeDecryptionError,
    AttributeKeyError,
    AuditError,
    AuditUnavailableError,
)
from policy_engine.audit.protection import AttributeProtector
from policy_engine.audit.records import PLAIN_ITEM_ATTRIBUTES, DecisionGroup, DecisionRecord, GroupItem, PlainItems
from policy_engine.audit.redaction import redact
from policy_engine.audit.retention import Retention
from policy_engine.audit.sinks import AuditSink, NullSink, RoomLine
from policy_engine.audit.writer import LOSS_POLICIES, DecisionLog, DecisionLogStats

__all__ = [
    "LOSS_POLICIES",
    "AttributeDecryptionError",
    "AttributeKeyError",
    "AttributeProtector",
    "AuditError",
    "AuditSink",
    "AuditUnavailableError",
    "DecisionLog",
    "DecisionGroup",
    "DecisionLogStats",
    "DecisionRecord",
    "GroupItem",
    "PLAIN_ITEM_ATTRIBUTES",
    "PlainItems",
    "NullSink",
    "Retention",
    "RoomLine",
    "redact",
]
