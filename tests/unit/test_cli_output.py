"""policyctl's --output json: records of the core become plain JSON objects."""

from __future__ import annotations

import io
import json
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
