"""examples/agent_tool_gate.py, run as its own process: tools filtered per user, every call guarded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_agent_loop_filters_and_guards() -> None:
    """Each user is offered only their tools; the injected shell call is denied for all, with a reason."""
    completed = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "agent_tool_gate.py"), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = completed.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    assert summary["dave"]["offered"] == ["web_search"]
    assert summary["carol"]["offered"] == ["web_search", "sql_query"]
    assert summary["bob"]["offered"] == ["web_search", "sql_query"]
    for user in ("dave", "carol", "bob"):
        assert summary[user]["ran"] == summary[user]["offered"]
        assert summary[user]["denied"] == ["shell_exec"]
    assert any("DENIED shell_exec: actor 'agent:ops'" in line for line in lines)
