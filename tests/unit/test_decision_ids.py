"""Decision ids: 128 random bits as 32 hex digits, never repeated, not even by a forked worker."""

from __future__ import annotations

import os
import re

from policy_engine.service.decisions import _IDS


def test_ids_are_32_hex_digits_and_distinct() -> None:
    drawn = [_IDS.next() for _ in range(2000)]  # more than one draw from os.urandom
    assert all(re.fullmatch(r"[0-9a-f]{32}", value) for value in drawn)
    assert len(set(drawn)) == len(drawn)


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
