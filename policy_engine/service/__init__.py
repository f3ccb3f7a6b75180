"""Use cases, no transport: decide checks, load and reload policy versions."""

from policy_engine.service.decisions import DEFAULT_POLICY_SET, CheckInput, CheckOutcome, DecisionService
from policy_engine.service.policies import LoadedPolicy, PolicyRegistry, import_new_bundles, load_version
from policy_engine.service.reload import Reloader

__all__ = [
    "DEFAULT_POLICY_SET",
    "CheckInput",
    "CheckOutcome",
    "DecisionService",
    "LoadedPolicy",
    "PolicyRegistry",
    "Reloader",
    "import_new_bundles",
    "load_version",
]
