"""Use cases, no transport: decide checks, load and reload policy versions."""

from policy_engine.service.decisions import (
    DEFAULT_POLICY_SET,
    BatchInput,
    BatchItem,
    BatchOutcome,
    CheckInput,
    CheckOutcome,
    DecisionService,
    FilterInput,
    FilterOutcome,
    ItemOutcome,
    ListInput,
    ListOutcome,
    PlainCheck,
    Principal,
)
from policy_engine.service.listing import Listing, list_allowed
from policy_engine.service.policies import LoadedPolicy, PolicyRegistry, load_version
from policy_engine.service.reload import Reloader
from policy_engine.service.versions import Provenance, PushResult, VersionService, check_bundle

__all__ = [
    "DEFAULT_POLICY_SET",
    "BatchInput",
    "BatchItem",
    "BatchOutcome",
    "CheckInput",
    "CheckOutcome",
    "DecisionService",
    "FilterInput",
    "FilterOutcome",
    "ItemOutcome",
    "ListInput",
    "ListOutcome",
    "Listing",
    "LoadedPolicy",
    "PlainCheck",
    "PolicyRegistry",
    "Principal",
    "Provenance",
    "PushResult",
    "Reloader",
    "VersionService",
    "check_bundle",
    "list_allowed",
    "load_version",
]
