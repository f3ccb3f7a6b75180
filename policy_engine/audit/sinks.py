"""The audit seam: what the service calls per decision, and the sink used when audit is off."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from policy_engine.audit.records import DecisionRecord

__all__ = ["AuditSink", "NullSink"]


@runtime_checkable
class AuditSink(Protocol):
    """Receives every decision.

    `record` is O(1) and never blocks on I/O: it runs on the gRPC event loop. It raises
    AuditUnavailableError only under the fail-closed policy, when the entry cannot be kept.
    `close` drains everything accepted so far to durable storage (clean shutdown).
    """

    def record(self, entry: DecisionRecord) -> None: ...

    def close(self, timeout: float = 10.0) -> None: ...


class NullSink:
    """Keeps nothing: the sink when the decision log is off (and in tests of other parts)."""

    def record(self, entry: DecisionRecord) -> None:
        del entry

    def close(self, timeout: float = 10.0) -> None:
        del timeout
