"""examples/agent_tool_gate.py, run as its own process: tools filtered per user, every call guarded."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_agent_loop_filters_and_guards() -> None:
    """Each user is offered only their tools; the injected shell call is denied for all, and the
    model is told only "denied" and the decision id."""
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
    denials = [line for line in lines if "DENIED shell_exec" in line]
    assert len(denials) == 3
    for line in denials:
        told = line.split("the model is told: ", 1)[1]
        # the model learns the decision id, never the policy's reason or rule text
        assert re.fullmatch(r"denied, decision [0-9a-f]{32}", told), line
