"""Benchmark: the decision log (audit trail), from the serving process to committed rows.

    python benchmarks/audit.py                          # SQLite and PostgreSQL, 3 runs each
    python benchmarks/audit.py --db sqlite --entries 50000 --repeat 5

Entries look like the service's: DecisionGroups of `--group` decisions (a BatchCheck, handed
over with `record_group`, stored as one row) sharing one subject, actor, decision time and
caller, each with its own resource, decision id and request id; or, for single `record` calls,
the same decisions as separate Checks (random decision ids, one row each); attribute
mappings are MappingProxyType as the engine's entities hold them; one attribute is configured
as hashed, the rest encrypted. Reported per run (no assertions; the machine is shared, so
compare the best of several runs):

* build: CPU to construct one DecisionRecord (the service's cost, for reference);
* handover, serving process: CPU of the serving process (every thread of it, so the queue's
  feeder thread too) per entry handed to `DecisionLogProcess`, for groups (`record_many` when
  the sink has it, else a `record` loop) and for single `record` calls;
* writer: end to end (first entry handed over -> last row committed) entries/s, and CPU
  microseconds per entry of the writer: the child process of `DecisionLogProcess`, and the
  writer thread of an in-process `DecisionLog`. PostgreSQL's own server CPU is not included.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy  # noqa: E402

from policy_engine.audit import AttributeProtector, DecisionGroup, DecisionLog, DecisionRecord  # noqa: E402
from policy_engine.audit.process import DecisionLogProcess  # noqa: E402
from policy_engine.store import ensure_schema, open_database  # noqa: E402

PG_ADMIN = os.environ.get("POLICY_ENGINE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
TICKS = os.sysconf("SC_CLK_TCK")


def protector() -> AttributeProtector:
    return AttributeProtector({"k1": bytes(range(32))}, "k1", hashed=["subject.email"], hash_key=b"h" * 32)


def groups(count: int, size: int) -> list[DecisionGroup]:
    """`count` decisions in groups of `size`, as BatchCheck hands them over."""
    out = []
    tools = ["web_search", "sql_query", "shell_exec", "email_send", "calculator"]
    for g in range(0, count, size):
        subject = MappingProxyType({"email": f"user{g}@example.com", "clearance": 2, "mfa": True})
        actor = MappingProxyType({"trust": "low"})
        out.append(DecisionGroup(
            id_prefix=uuid.uuid4().hex[:24],
            decided_at=datetime.now(UTC),
            policy_set="default",
            policy_version=7,
            tenant="acme",
            subject=f"user{g}",
            actor="agent:rag",
            caller="spiffe://acme/app",
            latency_us=12,
            attributes={"subject": subject, "actor": actor},
            items=[
                (  # a GroupItem's fields; the service hands over plain tuples
                    f"{i + 1:08x}", "invoke", f"tool:{tools[i % 5]}", i % 3 != 0,
                    "p, analyst, *, tool:web_search, invoke, True, allow" if i % 3 else "",
                    "matched" if i % 3 else "no rule matched", f"req-{g}-{i}",
                    {"resource": MappingProxyType({"classification": i % 4}), "context": {}},
                )
                for i in range(min(size, count - g))
            ],
        ))
    return out


def build_cost(n: int = 20_000) -> float:
    subject = MappingProxyType({"clearance": 2})
    now = datetime.now(UTC)
    started = time.process_time()
    for i in range(n):
        DecisionRecord(decision_id="x", decided_at=now, policy_set="default", policy_version=1,
                       tenant="acme", subject="alice", actor="", caller="c", action="invoke",
                       resource="tool:x", allowed=True, rule="r", reason="matched", request_id="q",
                       latency_us=i, attributes={"subject": subject, "actor": {}, "resource": {},
                                                 "context": {}})
    return (time.process_time() - started) / n * 1e6


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    path = f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat"
    with open(path) as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def wait_for(condition: Callable[[], bool], timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("the decision log did not catch up in time")
        time.sleep(0.05)


def units(batches: Sequence[DecisionGroup], grouped: bool) -> list[Any]:
    """What to hand over: the groups, or (`grouped` false) their decisions as separate Checks
    would make them (random decision ids, a row each)."""
    if grouped:
        return list(batches)
    return [entry._replace(decision_id=os.urandom(16).hex()) for group in batches for entry in group.records()]


def hand(sink: Any, handed: Sequence[Any], grouped: bool) -> None:
    """Each group with record_group, or each decision with record."""
    deliver = sink.record_group if grouped else sink.record
    for unit in handed:
        deliver(unit)


def kept(sink: Any) -> int:
    stats = sink.stats
    return stats.written + stats.spilled + stats.lost


class Database:
    """A fresh database for one run: a SQLite file, or a new PostgreSQL database."""

    def __init__(self, kind: str, directory: Path) -> None:
        self.kind = kind
        if kind == "sqlite":
            self.url = f"sqlite:///{directory / 'bench.db'}"
        else:
            self._admin = sqlalchemy.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
            self._name = f"pe_bench_{uuid.uuid4().hex[:12]}"
            with self._admin.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{self._name}"')
            self.url = PG_ADMIN.rsplit("/", 1)[0] + f"/{self._name}"
        self.engine = open_database(self.url)
        ensure_schema(self.engine, self.url)

    def rows(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.exec_driver_sql("SELECT count(*) FROM decision_log").scalar() or 0)

    def drop(self) -> None:
        self.engine.dispose()
        if self.kind == "postgres":
            with self._admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self._name}" WITH (FORCE)')
            self._admin.dispose()


def run_process(kind: str, entries: int, group: int, grouped: bool) -> dict[str, float]:
    """DecisionLogProcess: serving-process CPU per entry, writer-process CPU per entry, rate."""
    with tempfile.TemporaryDirectory() as directory:
        database = Database(kind, Path(directory))
        sink = DecisionLogProcess(database.url, replica_id="bench", spill_dir=Path(directory) / "spill",
                                  protector=protector(), queue_size=max(20_000, entries * 2))
        try:
            hand(sink, units(groups(200, group), grouped), grouped)
            wait_for(lambda: kept(sink) >= 200)
            batches = units(groups(entries, group), grouped)
            rows_before = database.rows()
            child = sink._process.pid  # noqa: SLF001 - a benchmark reads the writer's CPU
            serving0, writer0, wall0 = time.process_time(), cpu_seconds(child), time.perf_counter()
            hand(sink, batches, grouped)
            handed = time.process_time() - serving0
            wait_for(lambda: kept(sink) >= 200 + entries)
            wall = time.perf_counter() - wall0
            serving, writer = time.process_time() - serving0, cpu_seconds(child) - writer0
            lost = sink.stats.lost
        finally:
            sink.close(timeout=120)
        rows = database.rows() - rows_before
        database.drop()
    return {"serving_us": serving / entries * 1e6, "call_us": handed / entries * 1e6,
            "writer_us": writer / entries * 1e6, "rate": entries / wall, "lost": lost,
            "rows": rows}


def run_thread(kind: str, entries: int, group: int) -> dict[str, float]:
    """In-process DecisionLog: CPU per entry of its writer thread, and the end-to-end rate."""
    with tempfile.TemporaryDirectory() as directory:
        database = Database(kind, Path(directory))
        sink = DecisionLog(database.engine, replica_id="bench", spill_dir=Path(directory) / "spill",
                           protector=protector(), queue_size=max(20_000, entries * 2))
        try:
            hand(sink, groups(200, group), True)
            wait_for(lambda: kept(sink) >= 200)
            batches = groups(entries, group)
            tid = sink._thread.native_id  # noqa: SLF001 - a benchmark reads the writer's CPU
            writer0, wall0 = cpu_seconds(os.getpid(), tid), time.perf_counter()
            hand(sink, batches, True)
            wait_for(lambda: kept(sink) >= 200 + entries)
            wall = time.perf_counter() - wall0
            writer = cpu_seconds(os.getpid(), tid) - writer0
        finally:
            sink.close(timeout=120)
        database.drop()
    return {"writer_us": writer / entries * 1e6, "rate": entries / wall}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="sqlite,postgres")
    parser.add_argument("--entries", type=int, default=30_000)
    parser.add_argument("--group", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    # This machine's speed right now, to compare runs made at different times.
    started = time.process_time()
    for _ in range(2000):
        sum(range(1000))
    print(f"calibration: sum(range(1000)) {(time.process_time() - started) / 2000 * 1e6:.1f} us")
    print(f"build DecisionRecord: {min(build_cost() for _ in range(3)):.2f} us/entry (best of 3)")
    for kind in args.db.split(","):
        for label, grouped in (("batches of %d" % args.group, True), ("single record()", False)):
            results = [run_process(kind, args.entries, args.group, grouped) for _ in range(args.repeat)]
            for r in results:
                print(f"{kind:8} process, {label:16}: serving {r['serving_us']:6.2f} us/entry "
                      f"(in the calls {r['call_us']:5.2f}), writer {r['writer_us']:6.2f} us/entry, "
                      f"{r['rate']:9,.0f} entries/s, lost {r['lost']:.0f}, rows {r['rows']:.0f}")
            print(f"{kind:8} process, {label:16}: best serving "
                  f"{min(r['serving_us'] for r in results):.2f} us/entry, best writer "
                  f"{min(r['writer_us'] for r in results):.2f} us/entry, median rate "
                  f"{statistics.median(r['rate'] for r in results):,.0f} entries/s")
        results = [run_thread(kind, args.entries, args.group) for _ in range(args.repeat)]
        for r in results:
            print(f"{kind:8} thread writer: {r['writer_us']:6.2f} us/entry, {r['rate']:9,.0f} entries/s")


if __name__ == "__main__":
    main()
