"""Admission of decision RPCs: serve what fits in a latency budget, refuse the rest at once.

A process serves every RPC on one asyncio loop, and grpc.aio takes one call from grpc's
queue per turn of that loop: beyond capacity, calls wait in grpc's queue, unseen by the
process, and every answer is late (grpc's own `maximum_concurrent_rpcs` only stops taking
calls, so the waiting ones end CANCELLED when their callers give up). A decision RPC is
admitted when both hold:

- it has waited at most `queue_budget_ms` since it reached the server. grpc tells the
  server only the call's deadline, set when the call arrived; a caller that sends the
  attempt's timeout in `x-timeout-ms` (the SDK does) lets the server tell the wait apart:
  the timeout minus the time left. A call without it is taken as not having waited;
- the decisions in flight in handlers (a batch item or filter candidate is one; work that
  waits inside a handler: decision-log room, `min_version`) stay within
  `max_in_flight_decisions`, unless nothing else is in flight.

Otherwise it is refused at once, before authentication or any decision work, with
RESOURCE_EXHAUSTED and a `retry-after-ms` hint. The hint starts at `retry_after_ms`, grows
by half every 100 ms while refusals go on (the callers have not yet backed off enough for
the queue to drain) up to 5 s, and shrinks back once they stop; each refusal gets it with
jitter, so a refused burst does not come back at once. Shedding relies on callers that
honour the hint: a caller that retries at once keeps grpc's queue full, and its calls are
refused only after waiting in it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import grpc

from policy_engine.config import AdmissionSettings
from policy_engine.errors import RateLimitedError
from policy_engine.metrics import METRICS

__all__ = ["TIMEOUT_HEADER", "Admission", "OverloadedError"]

# The timeout a client sent this attempt with, in milliseconds. grpc gives the server only
# the deadline it derived when the call arrived (time_remaining); with the timeout, the
# difference is how long the call waited in grpc's queue before the server could take it,
# a wait this process cannot see otherwise. A duration, so clocks need not agree.
TIMEOUT_HEADER = "x-timeout-ms"

_MAX_RETRY_AFTER = 5.0
_ADAPT_SECONDS = 0.1
_MAX_DECLARED_TIMEOUT = 86_400.0


class OverloadedError(RateLimitedError):
    """The server cannot serve this request within its latency budget now; retry later."""


class Admission:
    """Per-process admission control for the decision RPCs (see the module docstring)."""

    def __init__(self, settings: AdmissionSettings, cost_of: dict[str, Callable[[Any], int]]) -> None:
        self._enabled = settings.enabled
        self._budget = settings.queue_budget_ms / 1000
        self._max_in_flight = settings.max_in_flight_decisions
        self._retry_after = settings.retry_after_ms / 1000
        self._cost_of = cost_of
        self._in_flight = 0
        # The hint given with refusals: grows while refusals go on (callers that honour it
        # have not backed off enough to drain the queue), shrinks back once they stop.
        self._hint = self._retry_after
        self._hint_changed = 0.0
        self._last_refusal = 0.0

    @property
    def in_flight(self) -> int:
        """Decisions admitted and not yet answered."""
        return self._in_flight

    def admit(self, method: str, request: Any, context: grpc.aio.ServicerContext) -> int:
        """The cost admitted (give it back with `release`; 0 for RPCs not counted), or raise
        OverloadedError."""
        cost_of = self._cost_of.get(method)
        if cost_of is None or not self._enabled:
            return 0
        waited = self._waited(context)
        if waited > self._budget:
            self._refuse("queue")
        cost = max(1, cost_of(request))
        if self._in_flight and self._in_flight + cost > self._max_in_flight:
            self._refuse("in_flight")
        self._in_flight += cost
        if self._hint > self._retry_after:
            self._relax()
        return cost

    def _waited(self, context: grpc.aio.ServicerContext) -> float:
        """How long this call waited since it reached the server, when its caller says how
        long it gave the call; 0 otherwise."""
        for key, value in context.invocation_metadata() or ():
            if key == TIMEOUT_HEADER:
                remaining = context.time_remaining()
                try:
                    sent_with = float(value) / 1000
                except ValueError:
                    return 0.0
                if remaining is None or not 0 < sent_with < _MAX_DECLARED_TIMEOUT:
                    return 0.0
                return sent_with - remaining
        return 0.0

    def release(self, cost: int) -> None:
        self._in_flight -= cost

    def _refuse(self, reason: str) -> None:
        METRICS.admission_refused.labels(reason=reason).inc()
        now = time.monotonic()
        self._last_refusal = now
        if now - self._hint_changed >= _ADAPT_SECONDS:
            self._hint = min(_MAX_RETRY_AFTER, self._hint * 1.5)
            self._hint_changed = now
        # Spread the retries of a burst over the hint so they do not come back together.
        hint = self._hint * random.uniform(0.5, 1.5)  # noqa: S311 - jitter, not security
        raise OverloadedError("server overloaded: retry after the hinted delay", hint)

    def _relax(self) -> None:
        now = time.monotonic()
        if now - self._last_refusal >= _ADAPT_SECONDS and now - self._hint_changed >= _ADAPT_SECONDS:
            self._hint = max(self._retry_after, self._hint / 1.5)
            self._hint_changed = now
