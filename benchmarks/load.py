"""The load generator of the serving benchmarks: client processes sending a phase's messages.

Each of `clients` processes takes its share of the messages (every clients-th),
opens `connections` channels and keeps its share of `inflight` calls going,
sending the serialised bytes as they are (no per-call serialisation in the
client, which shares the machine's cores with the server). A client answers
with its latencies after the warm-up, how many calls completed in all, the
errors, and the raw responses of every `sample_every`-th message it sent first
(to check against the world's expected decisions).
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing as mp
import pickle
import time
from pathlib import Path
from typing import Any

import grpc

__all__ = ["drive", "save_messages"]

SERVICE = "/policy_engine.v1.AuthorizationService/"


def save_messages(path: Path, messages: list[bytes]) -> Path:
    path.write_bytes(pickle.dumps(messages))
    return path


def _client(target: str, method: str, path: str, index: int, clients: int, inflight: int, connections: int,
            warmup: float, duration: float, sample_every: int, out: Any) -> None:
    messages = pickle.loads(Path(path).read_bytes())
    if len(messages) >= clients:  # else (a constant request) every client sends them all
        messages = messages[index::clients]

    async def run() -> dict[str, Any]:
        # A local subchannel pool per channel: otherwise channels of one process to one target
        # share a single TCP connection.
        channels = [grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
                    for _ in range(connections)]
        calls = [channel.unary_unary(SERVICE + method) for channel in channels]  # bytes in, bytes out
        latencies: list[float] = []
        samples: list[tuple[int, bytes]] = []
        errors: list[str] = []
        completed = 0
        counter = itertools.count()
        start = time.perf_counter()
        measure_from, stop_at = start + warmup, start + warmup + duration

        async def worker(call: Any) -> None:
            nonlocal completed
            while (now := time.perf_counter()) < stop_at:
                position = next(counter)
                try:
                    response = await call(messages[position % len(messages)], timeout=30)
                except grpc.RpcError as exc:
                    errors.append(f"{exc.code().name}: {exc.details()}")  # type: ignore[attr-defined]
                    continue
                done = time.perf_counter()
                completed += 1
                if now >= measure_from:
                    latencies.append(done - now)
                if position % sample_every == 0 and position < len(messages):
                    samples.append((index + position * clients, response))

        try:
            await asyncio.gather(*(worker(calls[i % connections]) for i in range(inflight)))
        finally:
            for channel in channels:
                await channel.close()
        return {"latencies": latencies, "samples": samples, "errors": errors, "completed": completed,
                "sent": next(counter), "available": len(messages)}

    out.send(asyncio.run(run()))
    out.close()


def drive(target: str, method: str, path: Path, size: int, *, clients: int, inflight: int, connections: int,
          warmup: float, duration: float, sample_every: int = 25) -> dict[str, Any]:
    """Send the messages saved at `path` for `warmup` + `duration` seconds; `size` decisions per call."""
    context = mp.get_context("spawn")
    pipes, processes = [], []
    for index in range(clients):
        count = inflight // clients + (1 if index < inflight % clients else 0)
        receive, send = context.Pipe(duplex=False)
        process = context.Process(target=_client, args=(
            target, method, str(path), index, clients, count, connections, warmup, duration, sample_every, send))
        process.start()
        pipes.append(receive)
        processes.append(process)
    parts = [pipe.recv() for pipe in pipes]
    for process in processes:
        process.join()
    latencies = sorted(latency for part in parts for latency in part["latencies"])
    count = len(latencies)
    return {
        "rps": count / duration,
        "decisions": count * size / duration,
        "p50": latencies[count // 2] * 1000 if count else float("nan"),
        "p99": latencies[min(count - 1, int(count * 0.99))] * 1000 if count else float("nan"),
        "completed": sum(part["completed"] for part in parts),
        "errors": [error for part in parts for error in part["errors"]],
        "samples": sorted(sample for part in parts for sample in part["samples"]),
        "wrapped": any(part["sent"] > part["available"] for part in parts),
    }
