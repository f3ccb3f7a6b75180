"""Decision ids: 32 hex digits, the time then 96 random bits; never repeated, not even by a forked worker."""

from __future__ import annotations

import os
import re

import time

from policy_engine.service.decisions import _IDS, _DecisionIds


def test_ids_are_32_hex_digits_and_distinct() -> None:
    drawn = [_IDS.next() for _ in range(2000)]  # more than one draw from os.urandom
    assert all(re.fullmatch(r"[0-9a-f]{32}", value) for value in drawn)
    assert len(set(drawn)) == len(drawn)


def test_ids_begin_with_the_time_so_later_ids_sort_after_earlier_ones() -> None:
    """The decision log's index on ids grows at its end (see _DecisionIds); within one second the
    order is random, and a BatchCheck's ids (the first 24 digits) still differ by 64 random bits."""
    now = [1_780_000_000.7]
    ids = _DecisionIds(clock=lambda: now[0])
    first = [ids.next() for _ in range(300)]
    now[0] += 1
    second = [ids.next() for _ in range(300)]
    assert {value[:8] for value in first} == {f"{1_780_000_000:08x}"}
    assert max(first) < min(second)
    assert len({value[:24] for value in first + second}) == 600
    assert abs(int(_IDS.next()[:8], 16) - time.time()) < 5


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    """The pool is per process: a child forked with ids left in its parent's pool draws new ones."""
    _IDS.next()  # the pool holds ids now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            os.write(write, "".join(_IDS.next() for _ in range(10)).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 4096).decode()
    os.close(read)
    parent = "".join(_IDS.next() for _ in range(10))
    assert len(child) == 320
    assert {child[i : i + 32] for i in range(0, 320, 32)}.isdisjoint(parent[i : i + 32] for i in range(0, 320, 32))
