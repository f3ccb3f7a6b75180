"""The request context bound to log lines: what a request binds shows on its lines, and only its."""

from __future__ import annotations

import asyncio
import io
import json
import logging

from policy_engine import logs
from policy_engine.logs import bind_request, configure_logging


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_bound_fields_reach_the_request_lines_later_ones_winning_empty_ones_ignored() -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream)
    logger = logging.getLogger("policy_engine.test_log_context")

    async def request(number: int) -> None:
        bind_request(rpc="Check", caller="svc", request_id="")
        bind_request(request_id=f"r-{number}", caller="", policy_version=number)
        logger.info("decided")

    async def both() -> None:
        await asyncio.gather(request(1), request(2))
        logger.info("outside")

    asyncio.run(both())
    decided = [line for line in _lines(stream) if line["message"] == "decided"]
    assert sorted((d["request_id"], d["policy_version"], d["caller"], d["rpc"]) for d in decided) == [
        ("r-1", 1, "svc", "Check"), ("r-2", 2, "svc", "Check"),
    ]
    outside = next(line for line in _lines(stream) if line["message"] == "outside")
    assert "request_id" not in outside and "rpc" not in outside


def test_a_context_that_binds_over_and_over_keeps_every_field() -> None:
    """Binding in a loop in one context (an embedding application) neither loses fields nor grows
    without bound."""
    stream = io.StringIO()
    configure_logging("INFO", "json", stream)
    logger = logging.getLogger("policy_engine.test_log_context")

    async def loop() -> None:
        bind_request(rpc="Check")
        for number in range(1000):
            bind_request(request_id=f"r-{number}", policy_set="" if number % 2 else "default")
        logger.info("last")
        assert logs._context.get()[2] <= logs._FOLD_AT  # noqa: SLF001 - the chain stays short

    asyncio.run(loop())
    last = _lines(stream)[-1]
    assert (last["rpc"], last["request_id"], last["policy_set"]) == ("Check", "r-999", "default")
