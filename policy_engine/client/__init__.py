"""The Python SDK for backends: typed clients over the v1 gRPC contract."""

from policy_engine.client.sync import CheckResult, MatchedRuleInfo, SyncClient

__all__ = ["CheckResult", "MatchedRuleInfo", "SyncClient"]
