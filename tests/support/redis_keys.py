"""A private key prefix in the test Redis, removed afterwards, so runs never see each other's counters."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis

REDIS_URL = os.environ.get("POLICY_ENGINE_TEST_REDIS", "redis://127.0.0.1:6379/15")


@contextmanager
def redis_namespace() -> Iterator[tuple[str, str]]:
    """(url, key prefix) of a Redis database for this test only; its keys are deleted at the end."""
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL}: {exc}")
    prefix = f"pe-test-{uuid.uuid4().hex[:12]}:"
    try:
        yield REDIS_URL, prefix
    finally:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
