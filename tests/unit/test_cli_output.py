"""policyctl's output: records of the core as plain JSON objects, and a reader that stops early."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from types import MappingProxyType

from policy_engine.actions import Action, ActionDecision, Party, ResourceRef
from policy_engine.cli.output import print_json


def test_named_tuple_records_and_read_only_mappings_print_as_objects() -> None:
    """An Action (a NamedTuple holding the engine's read-only attribute mappings) and an
    ActionDecision print as JSON objects with their field names, not as arrays or errors."""
    action = Action(
        "acme",
        Party("bob", MappingProxyType({"mfa": True})),
        "invoke",
        ResourceRef("tool", "web_search"),
    )
    stream = io.StringIO()
    print_json(stream, {"action": action, "decision": ActionDecision(False, "no rule allows it")})
    printed = json.loads(stream.getvalue())
    assert printed["action"]["subject"] == {"id": "bob", "attributes": {"mfa": True}}
    assert printed["action"]["resource"] == {"kind": "tool", "id": "web_search", "attributes": {}}
    assert printed["decision"] == {
        "allowed": False, "reason": "no rule allows it", "matched": [], "denied_party": "", "failure": "",
    }


def test_a_reader_that_stops_early_ends_policyctl_quietly() -> None:
    """`policyctl ... | head`: when the reader closes the pipe before policyctl has written
    everything, policyctl ends with the status of a SIGPIPE death, without a traceback."""
    policies = Path(__file__).resolve().parents[2] / "policies" / "default"
    process = subprocess.Popen(
        [sys.executable, "-c", "from policy_engine.cli.policyctl import main; main()", "test", str(policies)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    errors = process.stderr.read().decode()
    assert process.wait(timeout=60) == 141
    assert errors == ""
