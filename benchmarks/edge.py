#!/usr/bin/env python3
"""Edge benchmark: a legitimate client's Check latency with and without an abusive neighbour.

    .venv/bin/python benchmarks/edge.py                    # default settings, every phase
    .venv/bin/python benchmarks/edge.py --config FILE      # the server with this --config
    .venv/bin/python benchmarks/edge.py --seconds 5        # each phase's length
    .venv/bin/python benchmarks/edge.py --nofile 1024      # the server under a 1,024-descriptor limit

Starts `policy-engine serve` (SQLite, the example policies, no --config unless given)
on a free port; a legitimate client (its own process, one connection, one call at a
time) measures Check latency for `--seconds` in each phase:

  quiet        nothing else
  idle flood   an attacker opens `--connections` TCP connections (half send the HTTP/2
               preface and stay idle, half send nothing) and holds them
  reset flood  an attacker on `--attack-connections` connections opens Check streams
               and cancels each at once, as fast as it can

The legitimate client connects before each flood starts (a backend already serving).
Prints its p50/p99/max and failed calls, whether a new client could connect and get an
answer during the flood (and, for the idle flood, `--hold` seconds after it started),
how many flood connections the server had closed, and the server's CPU seconds per
phase. Numbers, not assertions.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from probes import check_request, free_port  # noqa: E402
from policy_engine.v1 import authorization_pb2_grpc  # noqa: E402

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
TICKS = os.sysconf("SC_CLK_TCK")




def start_server(port: int, scratch: Path, config: Path | None, nofile: int | None = None) -> subprocess.Popen[bytes]:
    command = [
        str(Path(sys.executable).parent / "policy-engine"), "serve",
        "--listen", f"127.0.0.1:{port}",
        "--db", f"sqlite:///{scratch / 'pe.db'}",
        "--policies", str(ROOT / "policies"),
        "--log-level", "WARNING",
    ]
    if config is not None:
        command += ["--config", str(config)]
    environment = {**os.environ, "POLICY_ENGINE_ADMIN_TOKEN_FILE": str(scratch / "admin-token")}
    def limit() -> None:
        if nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    process = subprocess.Popen(
        command, cwd=scratch, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=limit
    )
    target = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    with grpc.insecure_channel(target) as channel:
        stub = authorization_pb2_grpc.AuthorizationServiceStub(channel)
        while True:
            try:
                stub.Check(check_request(), timeout=2)
                return process
            except grpc.RpcError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.2)


def cpu_seconds(pid: int) -> float:
    """CPU time of `pid` and its children (the decision-log writer)."""
    total = 0.0
    pids = {pid}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                pids.add(int(entry))
    for each in pids:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


# ---------------------------------------------------------------- the legitimate client


def legitimate(target: str, seconds: float, rate: float, connected: mp.Event, go: mp.Event, out: mp.Queue) -> None:
    """Connect (before any flood starts, as a backend already serving would be), then on `go`
    send `rate` Checks a second for `seconds`, one at a time."""
    interval = 1.0 / rate
    latencies: list[float] = []
    failures = 0
    with grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
        stub = authorization_pb2_grpc.AuthorizationServiceStub(channel)
        try:
            stub.Check(check_request(), timeout=5)
        except grpc.RpcError:
            failures += 1
        connected.set()
        go.wait()
        end = time.monotonic() + seconds
        due = time.monotonic()
        while time.monotonic() < end:
            due += interval
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            started = time.perf_counter()
            try:
                stub.Check(check_request(), timeout=2)
                latencies.append(time.perf_counter() - started)
            except grpc.RpcError:
                failures += 1
    out.put((latencies, failures))


class Client:
    """The legitimate client in its own process: connected on creation, measuring on `run`."""

    def __init__(self, target: str, seconds: float, rate: float) -> None:
        self._connected, self._go, self._out = mp.Event(), mp.Event(), mp.Queue()
        self._process = mp.Process(target=legitimate, args=(target, seconds, rate, self._connected, self._go, self._out))
        self._process.start()
        self._connected.wait(60)

    def run(self) -> tuple[list[float], int]:
        self._go.set()
        result = self._out.get()
        self._process.join()
        return result


def fresh_client(target: str) -> str:
    """A new connection's first Check, as a client arriving during the flood would make it."""
    with grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
        try:
            started = time.perf_counter()
            authorization_pb2_grpc.AuthorizationServiceStub(channel).Check(check_request(), timeout=5)
            return f"answered in {1000 * (time.perf_counter() - started):.1f} ms"
        except grpc.RpcError as exc:
            return f"failed: {exc.code().name}"


# ---------------------------------------------------------------- attackers


def idle_flood(port: int, count: int, ready: mp.Event, stop: mp.Event, out: mp.Queue) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sockets = []
    refused = 0
    for index in range(count):
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=2)
            if index % 2 == 0:
                sock.sendall(PREFACE)
            sockets.append(sock)
        except OSError:
            refused += 1
    ready.set()
    stop.wait()
    closed = 0
    for sock in sockets:
        sock.setblocking(False)
        try:
            while sock.recv(65536):  # what the server sent (SETTINGS, GOAWAY), up to EOF if closed
                pass
            closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
        sock.close()
    out.put((len(sockets), refused, closed))


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def _literal(name: str, value: str) -> bytes:
    """An HPACK literal header field without indexing, no Huffman (names and values < 127 bytes)."""
    return b"\x00" + bytes([len(name)]) + name.encode() + bytes([len(value)]) + value.encode()


def _drain(sock: socket.socket) -> None:
    """Read what the server sent (or it stops reading us); ConnectionResetError at EOF."""
    try:
        while True:
            if not sock.recv(1 << 20):
                raise ConnectionResetError("closed by the server")
    except BlockingIOError:
        pass


def reset_flood(target: str, connections: int, ready: mp.Event, stop: mp.Event, out: mp.Queue) -> None:
    """HTTP/2 rapid reset, by hand: on each connection, HEADERS + DATA (a whole Check) and at once
    RST_STREAM(CANCEL), a hundred streams per write, as fast as the socket takes them."""
    host, port = target.rsplit(":", 1)
    headers = b"".join(
        _literal(name, value)
        for name, value in (
            (":method", "POST"), (":scheme", "http"), (":path", "/policy_engine.v1.AuthorizationService/Check"),
            (":authority", target), ("content-type", "application/grpc"), ("te", "trailers"),
        )
    )
    body = check_request().SerializeToString()
    message = b"\x00" + len(body).to_bytes(4, "big") + body
    cancel = (8).to_bytes(4, "big")

    def connect() -> socket.socket:
        sock = socket.create_connection((host, int(port)))
        sock.sendall(PREFACE)
        sock.setblocking(False)
        return sock

    sockets = [connect() for _ in range(connections)]
    streams = [1] * connections
    opened = reconnects = 0
    ready.set()
    while not stop.is_set():
        for index, sock in enumerate(sockets):
            burst = bytearray()
            for _ in range(100):
                stream = streams[index]
                streams[index] += 2
                burst += _frame(1, 0x4, stream, headers)  # HEADERS, END_HEADERS
                burst += _frame(0, 0x1, stream, message)  # DATA, END_STREAM
                burst += _frame(3, 0x0, stream, cancel)  # RST_STREAM(CANCEL)
            try:
                _drain(sock)
                sock.settimeout(1.0)
                sock.sendall(burst)
                sock.setblocking(False)
                opened += 100
            except OSError:  # closed by the server, or it stopped reading us for a second
                sock.close()
                sockets[index], streams[index] = connect(), 1
                reconnects += 1
    for sock in sockets:
        sock.close()
    out.put((opened, reconnects))


# ---------------------------------------------------------------- phases


def summary(name: str, latencies: list[float], failures: int, cpu: float, extra: str = "") -> None:
    if latencies:
        ordered = sorted(latencies)
        p50 = statistics.median(ordered) * 1000
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
        text = f"p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  max {ordered[-1] * 1000:7.1f} ms"
    else:
        text = "no answer at all"
    print(f"{name:12} {len(latencies):6d} calls  {text}  failed {failures:5d}  server CPU {cpu:5.1f} s{extra}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=1100, help="idle flood size")
    parser.add_argument("--hold", type=float, default=12.0, help="seconds the idle flood is held before counting closures")
    parser.add_argument("--attack-connections", type=int, default=4, help="reset flood connections")
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--nofile", type=int, default=None, help="the server's open-file limit (soft and hard)")
    parser.add_argument("--rate", type=float, default=200.0, help="the legitimate client's Checks per second")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="edge-bench-") as scratch:
        port = free_port()
        target = f"127.0.0.1:{port}"
        server = start_server(port, Path(scratch), args.config, args.nofile)
        try:
            limit = f", open files {args.nofile}" if args.nofile else ""
            print(f"policy-engine serve on {target} ({'--config ' + str(args.config) if args.config else 'no --config'}{limit})")
            client = Client(target, args.seconds, args.rate)
            before = cpu_seconds(server.pid)
            latencies, failures = client.run()
            summary("quiet", latencies, failures, cpu_seconds(server.pid) - before)

            client = Client(target, args.seconds, args.rate)
            ready, stop, out = mp.Event(), mp.Event(), mp.Queue()
            attacker = mp.Process(target=idle_flood, args=(port, args.connections, ready, stop, out))
            attacker.start()
            ready.wait(120)
            flood_started = time.monotonic()
            before = cpu_seconds(server.pid)
            newcomer = fresh_client(target)
            latencies, failures = client.run()
            cpu = cpu_seconds(server.pid) - before
            descriptors = len(os.listdir(f"/proc/{server.pid}/fd"))
            time.sleep(max(0.0, flood_started + args.hold - time.monotonic()))
            later = fresh_client(target)
            stop.set()
            held, refused, closed = out.get()
            attacker.join()
            summary(
                "idle flood", latencies, failures, cpu,
                f"\n{'':12} {held} flood connections opened ({refused} refused), {closed} closed by the server "
                f"within {args.hold:.0f} s; server descriptors during the flood: {descriptors}"
                f"\n{'':12} a new client during the flood: {newcomer}; after {args.hold:.0f} s: {later}",
            )

            client = Client(target, args.seconds, args.rate)
            ready, stop, out = mp.Event(), mp.Event(), mp.Queue()
            attacker = mp.Process(target=reset_flood, args=(target, args.attack_connections, ready, stop, out))
            attacker.start()
            ready.wait(60)
            before = cpu_seconds(server.pid)
            latencies, failures = client.run()
            cpu = cpu_seconds(server.pid) - before
            newcomer = fresh_client(target)
            stop.set()
            opened, reconnects = out.get()
            attacker.join()
            summary(
                "reset flood", latencies, failures, cpu,
                f"\n{'':12} {opened} streams opened and reset ({opened / args.seconds:.0f}/s, "
                f"{reconnects} reconnections after the server closed one); a new client: {newcomer}",
            )
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()


if __name__ == "__main__":
    main()
