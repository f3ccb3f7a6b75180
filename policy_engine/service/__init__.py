"""Use cases, no transport: decide checks, load and reload policy versions."""

from policy_engine.service.decisions import DEFAULT_POLICY_SET, CheckInput, CheckOutcome, DecisionService
from policy_engine.service.policies import LoadedPolicy, PolicyRegistry, load_version
from policy_engine.service.reload import Reloader
from policy_engine.service.versions import Provenance, PushResult, VersionService, check_bundle

__all__ = [
    "DEFAULT_POLICY_SET",
    "CheckInput",
    "CheckOutcome",
    "DecisionService",
    "LoadedPolicy",
    "PolicyRegistry",
    "Provenance",
    "PushResult",
    "Reloader",
    "VersionService",
    "check_bundle",
    "load_version",
]
