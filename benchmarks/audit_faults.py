"""Benchmark: how fast the decision log gets over faults (numbers only, no assertions).

    python benchmarks/audit_faults.py                 # PostgreSQL, 3 rounds of each
    python benchmarks/audit_faults.py --rounds 5

* takeover: kill -9 of the writer process of a `DecisionLogProcess` (entries trickling in at
  ~200/s): seconds until a new writer is ready, and until an entry handed over right after
  the kill is committed;
* hang: the database stops answering with its connections open (a proxy that forwards
  nothing): seconds until the first entry is in the spill file.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy  # noqa: E402

from policy_engine.audit import AttributeProtector, DecisionRecord  # noqa: E402
from policy_engine.audit.process import DecisionLogProcess  # noqa: E402
from policy_engine.audit.writer_process import _READY, _STANDING_BY  # noqa: E402
from policy_engine.store import ensure_schema, open_database  # noqa: E402
from policy_engine.store.decision_log import DecisionLogRepository  # noqa: E402
from tests.support.tcp_proxy import TcpProxy  # noqa: E402

PG_ADMIN = os.environ.get("POLICY_ENGINE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def entry() -> DecisionRecord:
    return DecisionRecord(uuid.uuid4().hex, datetime.now(UTC), "default", 1, "acme", "alice", "", "app",
                          "invoke", "tool:web_search", True, "p, alice, tool:*", "matched", "", 40,
                          {"subject": {"clearance": 2}})


def trickle(sink: DecisionLogProcess, stop: threading.Event) -> None:
    while not stop.is_set():
        sink.record(entry())
        time.sleep(0.005)


def wait(predicate, timeout: float = 60.0) -> float:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            return float("nan")
        time.sleep(0.002)
    return time.monotonic() - start


def takeover(url: str, spill: Path, rounds: int) -> None:
    protector = AttributeProtector({"k1": bytes(range(32))}, "k1", hash_key=b"h" * 32)
    repository = DecisionLogRepository(open_database(url))
    sink = DecisionLogProcess(url, replica_id="bench-takeover", spill_dir=spill, protector=protector)
    stop = threading.Event()
    feeder = threading.Thread(target=trickle, args=(sink, stop), daemon=True)
    feeder.start()
    try:
        wait(lambda: sink.stats.written > 100)
        for n in range(rounds):
            # the standby has started and imported its modules (what a fresh process takes long for)
            wait(lambda: sink._standby is not None and sink._standby.counters[_STANDING_BY])  # noqa: SLF001
            killed = sink.writer_pid
            assert killed is not None
            os.kill(killed, signal.SIGKILL)
            start = time.monotonic()
            marker = entry()
            sink.record(marker)
            wait(lambda: sink.writer_pid != killed and sink._counters[_READY])  # noqa: SLF001
            ready = time.monotonic() - start
            wait(lambda: _stored(repository, marker.decision_id))
            stored = time.monotonic() - start
            print(f"takeover {n + 1}: new writer ready after {ready:.2f}s, "
                  f"an entry handed over at the kill stored after {stored:.2f}s")
    finally:
        stop.set()
        feeder.join()
        sink.close(timeout=30)
    report = repository.verify()
    print(f"takeover: lost {sink.stats.lost}, verify {'ok' if report.ok else 'PROBLEM'}, "
          f"{sum(len(c.crash_gaps) for c in report.replicas)} crash gaps")


def _stored(repository: DecisionLogRepository, decision_id: str) -> bool:
    try:
        repository.get(decision_id)
    except Exception:  # noqa: BLE001 - not yet
        return False
    return True


def hang(url: str, spill: Path, rounds: int) -> None:
    protector = AttributeProtector({"k1": bytes(range(32))}, "k1", hash_key=b"h" * 32)
    proxy = TcpProxy(("127.0.0.1", 5432))
    proxy.start()
    through = url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    sink = DecisionLogProcess(through, replica_id="bench-hang", spill_dir=spill, protector=protector)
    stop = threading.Event()
    feeder = threading.Thread(target=trickle, args=(sink, stop), daemon=True)
    feeder.start()
    try:
        wait(lambda: sink.stats.written > 100)
        for n in range(rounds):
            spilled = sink.stats.spilled
            proxy.hang()
            took = wait(lambda: sink.stats.spilled > spilled)
            print(f"hang {n + 1}: first entry spilled {took:.2f}s after the database stopped answering")
            proxy.stop()
            proxy.resume()
            proxy.start()
            wait(lambda: not sink.stats.spill_pending)
    finally:
        stop.set()
        feeder.join()
        proxy.resume()
        sink.close(timeout=30)
        proxy.close()
    print(f"hang: written {sink.stats.written}, spilled {sink.stats.spilled}, replayed {sink.stats.replayed}, "
          f"lost {sink.stats.lost}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    admin = sqlalchemy.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    name = f"pe_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    try:
        ensure_schema(open_database(url), url)
        with tempfile.TemporaryDirectory() as scratch:
            takeover(url, Path(scratch) / "takeover", args.rounds)
            hang(url, Path(scratch) / "hang", args.rounds)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
