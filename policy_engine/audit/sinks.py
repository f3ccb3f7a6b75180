"""The audit seam: what the service calls per decision, and the sink used when audit is off."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from policy_engine.audit.records import DecisionGroup, DecisionRecord

__all__ = ["AuditSink", "NullSink"]


@runtime_checkable
class AuditSink(Protocol):
    """Receives every decision.

    `record`, `record_many` and `record_group` are cheap and never block on I/O: they run on
    the gRPC event loop. `record_group` hands over the decisions of one BatchCheck or
    FilterAllowed as one record (what a batch should call: the shared parts once, one row in
    the log); `record_many` several entries at once, in order. All raise AuditUnavailableError
    only under the fail-closed policy, when the entries cannot be kept (then none of the
    call's entries is kept). `close` drains everything accepted so far to durable storage
    (clean shutdown).
    """

    def record(self, entry: DecisionRecord) -> None: ...

    def record_many(self, entries: Sequence[DecisionRecord]) -> None: ...

    def record_group(self, group: DecisionGroup) -> None: ...

    def close(self, timeout: float = 10.0) -> None: ...


class NullSink:
    """Keeps nothing: the sink when the decision log is off (and in tests of other parts)."""

    def record(self, entry: DecisionRecord) -> None:
        del entry

    def record_many(self, entries: Sequence[DecisionRecord]) -> None:
        del entries

    def record_group(self, group: DecisionGroup) -> None:
        del group

    def close(self, timeout: float = 10.0) -> None:
        del timeout
