"""Pushes are checked in a worker process: same verdicts as in-process, bounded, recoverable."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from policy_engine.bundle import Bundle, bundle_digest, load_bundle
from policy_engine.errors import BundleError, RateLimitedError
from policy_engine.service.compile_worker import BundleChecker, check_in_process

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def checker():  # type: ignore[no-untyped-def]
    checker = BundleChecker(idle_seconds=30)
    yield checker
    checker.close()


def default() -> Bundle:
    return load_bundle(ROOT / "policies" / "default")


def broken() -> Bundle:
    bundle = default()
    return Bundle(bundle.name, bundle.model_text.replace("r.act == p.act", "r.act =="), bundle.policy_text, bundle.tests, bundle.schema_text)


def test_worker_accepts_with_rule_count_and_digest(checker: BundleChecker) -> None:
    """A good bundle comes back with the engine's rule count and the bundle's digest."""
    bundle = default()
    checked = checker.check(bundle)
    assert checked == check_in_process(bundle)
    assert checked.sha256 == bundle_digest(bundle)


def test_worker_refuses_with_the_same_problems(checker: BundleChecker) -> None:
    """A broken bundle is refused by the worker with exactly the in-process problems (file:line)."""
    with pytest.raises(BundleError) as in_process:
        check_in_process(broken())
    with pytest.raises(BundleError) as in_worker:
        checker.check(broken())
    assert in_worker.value.problems == in_process.value.problems
    assert in_worker.value.problems[0].file == "model.conf"


def test_full_queue_is_refused_at_once(checker: BundleChecker) -> None:
    """Beyond one check and the queue limit, a push is refused with RateLimitedError instead of waiting."""
    small = BundleChecker(queue_limit=0)
    waiting: list[Exception] = []
    with small._turn:  # a check in progress
        first = threading.Thread(target=lambda: waiting.append(_try(small, default())))
        first.start()
        while small._waiting < 1:
            time.sleep(0.01)
        with pytest.raises(RateLimitedError):
            small.check(default())
    first.join()
    small.close()
    assert waiting == [None]


def _try(checker: BundleChecker, bundle: Bundle) -> Exception | None:
    try:
        checker.check(bundle)
    except Exception as exc:  # noqa: BLE001
        return exc
    return None


def test_slow_check_is_killed_and_refused() -> None:
    """A check that outlives the timeout kills the worker and refuses the bundle; the next check works."""
    slow = BundleChecker(timeout=0.001)
    with pytest.raises(BundleError, match="took longer than"):
        slow.check(default())
    slow._timeout = 120
    assert slow.check(default()).rule_count > 0
    slow.close()


def test_dead_worker_is_replaced(checker: BundleChecker) -> None:
    """A worker that died between pushes is started again for the next one."""
    checker.check(default())
    checker._process.kill()
    checker._process.join()
    assert checker.check(default()).rule_count > 0


def test_worker_exits_after_a_big_bundle() -> None:
    """After a bundle bigger than recycle_bytes the worker process is gone (its memory returned)."""
    recycling = BundleChecker(recycle_bytes=0)
    recycling.check(default())
    assert recycling._process is None
    recycling.close()
