"""Check pushed bundles in a separate process, one at a time, so serving never waits on a push.

Compiling, linting, testing and hashing a big bundle (250k rules) takes
seconds of CPU and hundreds of MiB of short-lived objects. Done in the
serving process it stalls the event loop for every caller and leaves the
heap grown for good. Here it runs in one worker process per serving process:

- one bundle is checked at a time; up to `queue_limit` more wait (each in a
  thread of the server's default executor, so the limit stays small), and a
  push beyond that is refused at once with RESOURCE_EXHAUSTED
  (RateLimitedError);
- the worker exits after a bundle bigger than `recycle_bytes` (its memory
  goes back to the system) and after `idle_seconds` without work; the next
  push starts a new one;
- a check that outlives `timeout` kills the worker, and the bundle is
  refused; a worker that dies is started again once for the same bundle,
  then the bundle is refused. Nothing is written in any of these cases.

The result is only what the store needs: the rule count and the digest.
The serving process itself only passes the bundle's text along; it trims
its heap around each push and, once it checks pushes, serves allocations of
1 MiB or more from their own mappings, so a push does not leave it bigger.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import multiprocessing
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from policy_engine.bundle import Bundle, bundle_digest, check_bundle
from policy_engine.errors import BundleError, Problem, RateLimitedError

__all__ = [
    "BundleChecker",
    "CheckedPush",
    "PushCheck",
    "check_in_process",
    "release_freed_memory",
    "release_freed_memory_soon",
    "shared_checker",
]

log = logging.getLogger(__name__)

PushCheck = Callable[[Bundle], "CheckedPush"]


@dataclass(frozen=True)
class CheckedPush:
    """A bundle that passed every check: what the store records about it."""

    rule_count: int
    sha256: str


def check_in_process(bundle: Bundle) -> CheckedPush:
    """Run the checks here (the CLI, library use); BundleError lists every problem."""
    engine = check_bundle(bundle)
    return CheckedPush(engine.rule_count, bundle_digest(bundle))


def _bundle_size(bundle: Bundle) -> int:
    return len(bundle.model_text) + len(bundle.policy_text) + len(bundle.schema_text) + len(bundle.roles_text) + sum(
        len(t) for t in bundle.tests.values()
    )


class _WorkerDied(Exception):
    pass


class _TimedOut(Exception):
    pass


class BundleChecker:
    """`check(bundle)`, answered by a worker process; blocking, safe to call from many threads."""

    def __init__(
        self,
        *,
        queue_limit: int = 4,
        timeout: float = 300.0,
        recycle_bytes: int = 1 << 20,
        idle_seconds: float = 60.0,
    ) -> None:
        self._queue_limit = queue_limit
        self._timeout = timeout
        self._recycle_bytes = recycle_bytes
        self._idle_seconds = idle_seconds
        self._turn = threading.Lock()  # held while a bundle is being checked
        self._count = threading.Lock()
        self._waiting = 0
        self._process: Any = None
        self._connection: Connection | None = None

    def __call__(self, bundle: Bundle) -> CheckedPush:
        return self.check(bundle)

    def check(self, bundle: Bundle) -> CheckedPush:
        with self._count:
            if self._waiting >= self._queue_limit + 1:
                raise RateLimitedError(
                    f"{self._waiting} pushes are being checked or waiting; try again shortly", 1.0
                )
            self._waiting += 1
        try:
            with self._turn:
                return self._check_now(bundle)
        finally:
            with self._count:
                self._waiting -= 1

    def close(self) -> None:
        with self._turn:
            self._stop()

    def _check_now(self, bundle: Bundle) -> CheckedPush:
        payload = (
            bundle.name, bundle.model_text, bundle.policy_text, dict(bundle.tests), bundle.schema_text, bundle.roles_text
        )
        try:
            try:
                answer = self._ask(payload)
            except _WorkerDied as first:
                log.warning("bundle checker died (%s); starting it again", first)
                answer = self._ask(payload)
        except _WorkerDied as exc:
            raise BundleError([Problem("bundle", f"the bundle checker died while checking it ({exc})")]) from exc
        except _TimedOut as exc:
            raise BundleError(
                [Problem("bundle", f"checking the bundle took longer than {self._timeout:g} s")]
            ) from exc
        finally:
            if _bundle_size(bundle) > self._recycle_bytes:
                self._stop()
        kind, value = answer
        if kind == "refused":
            raise BundleError([Problem(*p) for p in value])
        return CheckedPush(*value)

    def _ask(self, payload: tuple[Any, ...]) -> tuple[str, Any]:
        connection = self._start()
        try:
            connection.send(payload)
            answered = connection.poll(self._timeout)
            if answered:
                return connection.recv()  # type: ignore[no-any-return]
        except (EOFError, OSError) as exc:
            code = self._process.exitcode if self._process is not None else None
            self._stop(kill=True)
            raise _WorkerDied(f"exit code {code}") from exc
        self._stop(kill=True)
        raise _TimedOut

    def _start(self) -> Connection:
        if self._process is not None and self._process.is_alive() and self._connection is not None:
            return self._connection
        self._stop(kill=True)
        context = multiprocessing.get_context("spawn")  # never fork a process running grpc threads
        parent, child = context.Pipe()
        process = context.Process(
            target=_serve, args=(child, self._idle_seconds), name="policy-engine-bundle-checker", daemon=True
        )
        process.start()
        child.close()
        self._process, self._connection = process, parent
        return parent

    def _stop(self, kill: bool = False) -> None:
        process, connection = self._process, self._connection
        self._process = self._connection = None
        if connection is not None:
            try:
                if not kill:
                    connection.send(None)
            except OSError:
                pass
            connection.close()
        if process is not None:
            process.join(timeout=0 if kill else 5)
            if process.is_alive():
                process.kill()
                process.join()


def _serve(connection: Connection, idle_seconds: float) -> None:
    """The worker: check each bundle sent, answer ("ok", (rules, sha256)) or ("refused", problems)."""
    with contextlib.suppress(OSError):
        os.nice(19)  # on a busy host the serving process gets the CPU first
    while connection.poll(idle_seconds):
        try:
            payload = connection.recv()
        except EOFError:
            return
        if payload is None:
            return
        name, model_text, policy_text, tests, schema_text, roles_text = payload
        bundle = Bundle(name, model_text, policy_text, tests, schema_text, roles_text=roles_text)
        try:
            checked = check_in_process(bundle)
        except BundleError as exc:
            answer: tuple[str, Any] = ("refused", [(p.file, p.message, p.line) for p in exc.problems])
        except Exception as exc:  # noqa: BLE001 - a refusal with the reason, never a crash
            answer = ("refused", [("bundle", f"cannot be checked: {type(exc).__name__}: {exc}", None)])
        else:
            answer = ("ok", (checked.rule_count, checked.sha256))
        connection.send(answer)


def _libc() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None
    except OSError:
        return None


_LIBC = _libc()  # None where the C library is not glibc: nothing to tune then
_M_MMAP_THRESHOLD = -3
_BIG_ALLOCATION = 1 << 20


def keep_big_allocations_apart() -> None:
    """Serve allocations of 1 MiB and more (a pushed bundle's texts) from their own mappings.

    glibc raises its mmap threshold after such a block is freed, so the next
    ones land in the heap and stay there; a fixed threshold hands each one
    back to the system when it is freed.
    """
    if _LIBC is not None:
        _LIBC.mallopt(_M_MMAP_THRESHOLD, _BIG_ALLOCATION)


def release_freed_memory() -> None:
    """Hand the heap pages freed by a push back to the system.

    A pushed bundle passes through the serving process as a few copies of its
    text (the request, the str, the pipe, the database row), each freed after
    the push; glibc keeps free pages in the arena of the thread that freed
    them until it is trimmed.
    """
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def release_freed_memory_soon(delay: float = 1.0) -> None:
    """`release_freed_memory` once the push's response is sent and its request freed."""
    timer = threading.Timer(delay, release_freed_memory)
    timer.daemon = True
    timer.start()


_SHARED: BundleChecker | None = None
_SHARED_LOCK = threading.Lock()


def shared_checker() -> BundleChecker:
    """The one checker of this process: however many servers it runs, one push compiles at a time."""
    global _SHARED  # noqa: PLW0603 - one worker per process, started on first use
    with _SHARED_LOCK:
        if _SHARED is None:
            keep_big_allocations_apart()
            _SHARED = BundleChecker()
        return _SHARED
