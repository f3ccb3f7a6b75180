"""A/B of the serving path: this tree's server against another revision's, same load.

    .venv/bin/python benchmarks/ab.py --base 8aabb16            # 6 rounds
    .venv/bin/python benchmarks/ab.py --base /some/checkout --rounds 10 --phase batch50 --rules 100000

Starts the echo server and two real servers (`serve.py`'s settings): this tree's, and the
base's (a git revision, checked out in a temporary worktree, or a directory holding a
checkout), each run from its own source with PYTHONPATH, serving the generated world of
benchmarks/world.py. Every round draws new requests of the phase from the world (the same
messages for echo and both servers; `names-check` is the constant names-only Check), measures echo, then both
real servers, the order of the two alternating (A B, B A, ...): on this host the phase right
after echo's ran about 5% faster, enough to fake a gain. Printed per phase: RPS and, per
request, the CPU of the whole machine, of the server's threads by name and of its child
processes (the decision-log writer), read from /proc over a window inside the phase. At the
end: the median of this tree's RPS over the base's, and in how many rounds it was ahead.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import load  # noqa: E402 - the load generator of the serving benchmark
import serve  # noqa: E402 - its servers
import traffic  # noqa: E402
from world import World  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WARMUP, DURATION = 1.0, 5.5
# The window read from /proc: inside the clients' measured period, after their start-up.
WINDOW_START, WINDOW = 1.8, 3.0


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / serve.TICKS, sum(values) / serve.TICKS


def thread_seconds(root: int) -> dict[str, float]:
    """CPU seconds of `root`'s threads by name, and of its children's as "child:<name>"."""
    seconds: dict[str, float] = {}
    for pid in serve.with_children({root}):
        prefix = "" if pid == root else "child:"
        try:
            for task in Path(f"/proc/{pid}/task").iterdir():
                name = prefix + (task / "comm").read_text().strip()
                seconds[name] = seconds.get(name, 0.0) + int((task / "schedstat").read_text().split()[0]) / 1e9
        except OSError:
            continue
    return seconds


def phase(label: str, port: int, server: subprocess.Popen[bytes], kind: str, messages: Path) -> float:
    """Drive `server` for one phase; print its RPS and where the CPU went; return the RPS."""
    readings: list[tuple[tuple[float, float], dict[str, float]]] = []

    def read_window() -> None:
        time.sleep(WINDOW_START)
        readings.append((machine_busy(), thread_seconds(server.pid)))
        time.sleep(WINDOW)
        readings.append((machine_busy(), thread_seconds(server.pid)))

    reader = threading.Thread(target=read_window)
    reader.start()
    method, size = ("Check", 1) if kind == "names-check" else (traffic.PHASES[kind].method, traffic.PHASES[kind].size)
    result = load.drive(f"127.0.0.1:{port}", method, messages, size, clients=4, inflight=64, connections=2,
                        warmup=WARMUP, duration=DURATION)
    reader.join()
    if result["errors"]:
        print(f"{label}: {len(result['errors'])} errors, first: {result['errors'][0]}")
    ((busy0, total0), threads0), ((busy1, total1), threads1) = readings
    requests = result["rps"] * WINDOW
    per_thread = {name: (threads1[name] - threads0.get(name, 0.0)) / requests * 1e6 for name in threads1}
    server_us = sum(per_thread.values())
    machine_us = (busy1 - busy0) / requests * 1e6
    cores = (busy1 - busy0) / (total1 - total0) * (os.cpu_count() or 1)
    top = sorted(per_thread.items(), key=lambda item: -item[1])
    print(f"{label:5s} {result['rps']:7,.0f} RPS  p99 {result['p99']:5.1f} ms  machine {cores:.2f} cores busy; "
          f"µs per request: all {machine_us:.0f}, server {server_us:.0f}, the rest {machine_us - server_us:.0f} "
          f"({', '.join(f'{name} {us:.0f}' for name, us in top if us >= 2)})", flush=True)
    return result["rps"]


def draw(world: World, kind: str, round_: int) -> list[bytes]:
    """A round's messages: enough new requests of the phase for one server's run."""
    if kind == "names-check":
        return [serve.NAMES_CHECK.SerializeToString()]
    count = int(traffic.PHASES[kind].rate * (WARMUP + DURATION))
    return traffic.draw(world, kind, count, seed=round_ + 1).messages


def checkout(base: str, scratch: Path) -> tuple[Path, Callable[[], None]]:
    """A directory holding the base's source, and how to clean it up."""
    if Path(base).is_dir():
        return Path(base), lambda: None
    tree = scratch / "base"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), base],
                   check=True, capture_output=True)
    return tree, lambda: subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                                        check=False, capture_output=True)


def start(tree: Path, scratch: Path, world: World) -> tuple[int, subprocess.Popen[bytes]]:
    """A real server run from the source in `tree` (PYTHONPATH is inherited by its children)."""
    port = serve.free_port()
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(tree)
    try:
        scratch.mkdir()
        [process] = serve.start_real(port, 1, scratch, serve.free_port(), world)
    finally:
        if before is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = before
    return port, process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="git revision or directory of the code to compare with")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--phase", default="check", choices=[*traffic.PHASES, "names-check"], help="request kind")
    parser.add_argument("--rules", type=int, default=10_000, help="size of the generated world, in policy lines")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pe-ab-") as directory:
        scratch = Path(directory)
        base_tree, remove = checkout(args.base, scratch)
        processes: list[subprocess.Popen[bytes]] = []
        world = World.generate(args.rules)
        try:
            echo_port = serve.free_port()
            processes += serve.start_echo(echo_port, 1)
            ours_port, ours = start(ROOT, scratch / "ours", world)
            base_port, base = start(base_tree, scratch / "base-server", world)
            processes += [ours, base]
            gains = []
            for round_ in range(args.rounds):
                messages = load.save_messages(scratch / f"round-{round_}.bin", draw(world, args.phase, round_))
                echo_rps = phase("echo", echo_port, processes[0], args.phase, messages)
                order = [("A", ours_port, ours), ("B", base_port, base)]
                rps = {label: phase(label, port, server, args.phase, messages)
                       for label, port, server in (order if round_ % 2 == 0 else order[::-1])}
                gains.append(rps["A"] / rps["B"])
                print(f"round {round_ + 1}: A/B {gains[-1]:.3f}, A/echo {rps['A'] / echo_rps:.2f}, "
                      f"B/echo {rps['B'] / echo_rps:.2f}", flush=True)
            ahead = sum(gain > 1 for gain in gains)
            print(f"A (this tree) / B ({args.base}): median {statistics.median(gains):.3f}, "
                  f"A ahead in {ahead} of {len(gains)} rounds")
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait()
            remove()


if __name__ == "__main__":
    main()
