#!/usr/bin/env python3
"""A small agent loop whose tools are gated by policy-engine: runnable, no network, no real model.

For each user the loop
  1. filters the tool definitions (OpenAI-style dicts) down to what this user,
     through this agent, may invoke, *before* the model sees them;
  2. runs a scripted fake model that asks for tool calls, one of which (a
     prompt-injection attempt) names a tool it was never offered;
  3. guards every tool call: the tool functions are decorated with
     `guarded_tool`, so a call the policy denies raises ToolCallDenied and
     "denied, decision <id>" goes back to the model instead of a result. The
     model never sees the policy's reason (rule text tells a prompt-injected
     model what to try next); an operator looks the decision id up in the
     decision log (`policyctl decision <id>`).

    python examples/agent_tool_gate.py                       # starts its own server on a free port
    python examples/agent_tool_gate.py --server 127.0.0.1:50051
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from policy_engine.client import SyncClient, ToolCallDenied, acting_as, guarded_tool, tool_name

ROOT = Path(__file__).resolve().parent.parent
AGENT = "agent:ops"
TOOLS: list[dict[str, Any]] = [
    {"type": "function", "function": {"name": name, "description": text, "parameters": {"type": "object"}}}
    for name, text in (
        ("web_search", "Search the web"),
        ("sql_query", "Query the warehouse"),
        ("shell_exec", "Run a shell command"),
        ("payments_transfer", "Move money"),
    )
]


@dataclass(frozen=True)
class User:
    id: str
    attributes: Mapping[str, Any] = field(default_factory=dict)


USERS = (
    User("dave", {"mfa": True, "clearance": 0}),   # viewer
    User("carol", {"mfa": True, "clearance": 2}),  # analyst
    User("bob", {"mfa": True, "clearance": 2}),    # engineer, but the ops agent may not use the shell
)


def build_tools(client: SyncClient) -> dict[str, Any]:
    """The Python functions behind the tools, each guarded by the policy."""

    @guarded_tool(client)
    def web_search(query: str) -> str:
        return f"3 results for {query!r}"

    @guarded_tool(client)
    def sql_query(query: str) -> str:
        return f"42 rows for {query!r}"

    @guarded_tool(client)
    def shell_exec(command: str) -> str:
        return f"ran {command!r}"

    @guarded_tool(client)
    def payments_transfer(amount: int, to: str) -> str:
        return f"sent {amount} to {to}"

    return {f.__name__: f for f in (web_search, sql_query, shell_exec, payments_transfer)}


class ScriptedModel:
    """A fake LLM: asks for each offered tool once, then tries one it was not offered, then answers."""

    INJECTED = {"name": "shell_exec", "arguments": json.dumps({"command": "cat /etc/passwd"})}

    def __init__(self, offered: list[dict[str, Any]]) -> None:
        calls = [
            {"name": tool_name(tool), "arguments": json.dumps(self._arguments(tool_name(tool)))}
            for tool in offered
        ]
        if all(call["name"] != "shell_exec" for call in calls):
            calls.append(self.INJECTED)
        self._script: Iterator[dict[str, str]] = iter(calls)

    @staticmethod
    def _arguments(name: str) -> dict[str, Any]:
        return {"payments_transfer": {"amount": 10, "to": "x"}, "shell_exec": {"command": "uptime"}}.get(
            name, {"query": "quarterly revenue"}
        )

    def next_call(self) -> dict[str, str] | None:
        return next(self._script, None)


def run_turn(client: SyncClient, tools: Mapping[str, Any], user: User, out: Any) -> dict[str, list[str]]:
    """One agent turn for one user; returns the tool names offered, run and denied."""
    identity = dict(tenant="acme", subject=user.id, subject_attributes=user.attributes, actor=AGENT)
    offered = client.filter_tools(TOOLS, **identity)
    names = [tool_name(tool) for tool in offered]
    print(f"[{user.id}] tools offered to the model: {', '.join(names) or '(none)'}", file=out)
    model = ScriptedModel(offered)
    ran, denied = [], []
    with acting_as(**identity):
        while (call := model.next_call()) is not None:
            function = tools.get(call["name"])
            try:
                if function is None:
                    raise ToolCallDenied(call["name"], "no such tool")
                result = function(**json.loads(call["arguments"]))
            except ToolCallDenied as exc:
                denied.append(call["name"])
                print(f"[{user.id}]   DENIED {call['name']}, the model is told: {for_the_model(exc)}", file=out)
                continue
            ran.append(call["name"])
            print(f"[{user.id}]   ran {call['name']}: {result}", file=out)
    return {"offered": names, "ran": ran, "denied": denied}


def for_the_model(denial: ToolCallDenied) -> str:
    """What goes back to the model for a denied call: no reason, no rule, only the decision id."""
    decision_id = getattr(denial.result, "decision_id", "")
    return f"denied, decision {decision_id}" if decision_id else "denied"


@contextmanager
def _server(address: str | None) -> Iterator[str]:
    if address:
        yield address
        return
    from policy_engine.testing import running_server

    with running_server(ROOT / "policies") as server:
        yield server.target


def main(argv: list[str] | None = None, out: Any = sys.stdout) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", help="host:port of a running policy-engine (default: start one)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary at the end")
    args = parser.parse_args(argv)
    with _server(args.server) as target, SyncClient(target) as client:
        tools = build_tools(client)
        summary = {user.id: run_turn(client, tools, user, out) for user in USERS}
    if args.json:
        print(json.dumps(summary, sort_keys=True), file=out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
