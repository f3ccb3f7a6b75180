"""The decision metrics as Prometheus scrapes them: counts by set and result, a cumulative histogram."""

from __future__ import annotations

from prometheus_client import generate_latest

from policy_engine.metrics import Metrics


def _samples(metrics: Metrics) -> dict[str, float]:
    lines = generate_latest(metrics.registry).decode().splitlines()
    return {name: float(value) for name, value in (line.rsplit(" ", 1) for line in lines if not line.startswith("#"))}


def test_decisions_are_counted_by_set_and_result() -> None:
    metrics = Metrics()
    metrics.count_decisions("default", True)
    metrics.count_decisions("default", False, 3)
    metrics.count_decisions("big", True, 100)
    samples = _samples(metrics)
    assert samples['policy_engine_decisions_total{policy_set="default",result="allow"}'] == 1
    assert samples['policy_engine_decisions_total{policy_set="default",result="deny"}'] == 3
    assert samples['policy_engine_decisions_total{policy_set="big",result="allow"}'] == 100


def test_decision_times_fill_cumulative_buckets_bounds_included() -> None:
    metrics = Metrics()
    metrics.observe_decision_seconds(0.00003)
    metrics.observe_decision_seconds(0.0001)  # on a bound: in that bound's bucket
    metrics.observe_decision_seconds(0.5, 2)  # above every bound
    metrics.observe_decision_seconds(0.001, 0)  # nothing observed
    samples = _samples(metrics)
    assert samples['policy_engine_decision_seconds_bucket{le="2e-05"}'] == 0
    assert samples['policy_engine_decision_seconds_bucket{le="5e-05"}'] == 1
    assert samples['policy_engine_decision_seconds_bucket{le="0.0001"}'] == 2
    assert samples['policy_engine_decision_seconds_bucket{le="0.1"}'] == 2
    assert samples['policy_engine_decision_seconds_bucket{le="+Inf"}'] == 4
    assert samples["policy_engine_decision_seconds_count"] == 4
    assert abs(samples["policy_engine_decision_seconds_sum"] - 1.00013) < 1e-9
