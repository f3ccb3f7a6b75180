"""In-process counters: token buckets and denial windows behave as the shared ones must."""

from __future__ import annotations

from policy_engine.server.throttling import RateLimiter
from policy_engine.service.counters import LocalCounters


def test_bucket_admits_its_burst_then_names_the_wait() -> None:
    """A bucket of 3 at 2/s admits 3 at once, then asks for half a second; it refills with time."""
    counters = LocalCounters(clock=lambda: 0.0)
    assert [counters.take("k", 2, 3, now=10.0) for _ in range(3)] == [0, 0, 0]
    assert counters.take("k", 2, 3, now=10.0) == 0.5
    assert counters.take("k", 2, 3, now=10.5) == 0
    assert counters.take("other", 2, 3, now=10.5) == 0


def test_cost_above_the_burst_empties_a_full_bucket() -> None:
    """A batch costing more than the whole burst passes on a full bucket instead of never passing."""
    counters = LocalCounters()
    assert counters.take("k", 1, 5, cost=50, now=0.0) == 0
    assert counters.take("k", 1, 5, cost=1, now=0.0) == 1.0


def test_limiters_sharing_counters_keep_their_keys_apart() -> None:
    """Two named limiters on one Counters do not spend each other's buckets."""
    shared = LocalCounters()
    caller, subject = RateLimiter(1, 1, counters=shared, name="caller"), RateLimiter(1, 1, counters=shared, name="subject")
    assert caller.try_acquire("bob", 0.0) == 0
    assert subject.try_acquire("bob", 0.0) == 0
    assert caller.try_acquire("bob", 0.0) > 0


def test_burst_fires_once_past_the_limit_and_starts_afresh() -> None:
    """More than 3 events in the window fire once; the window then starts empty."""
    now = [0.0]
    counters = LocalCounters(clock=lambda: now[0])
    assert [counters.burst("k", "alice", 60, 3) for _ in range(4)] == [False, False, False, True]
    assert [counters.burst("k", "alice", 60, 3) for _ in range(3)] == [False, False, False]


def test_burst_forgets_events_older_than_the_window() -> None:
    """Events spread wider than the window never add up to a burst."""
    now = [0.0]
    counters = LocalCounters(clock=lambda: now[0])
    for _ in range(10):
        assert not counters.burst("k", "alice", 1.0, 3)
        now[0] += 0.5


def test_burst_needs_enough_distinct_members() -> None:
    """An actor-wide burst needs denials from at least `min_members` subjects, however many one subject makes."""
    counters = LocalCounters(clock=lambda: 0.0)
    assert not any(counters.burst("k", "alice", 60, 3, min_members=2) for _ in range(10))
    assert counters.burst("k", "bob", 60, 3, min_members=2)
