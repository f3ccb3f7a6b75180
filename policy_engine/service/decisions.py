"""Decide checks: pick the policy version, validate, apply the subject-AND-actor rule.

No transport here: the servicer converts proto to a CheckInput and back.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from policy_engine.actions import Action, decide_action
from policy_engine.engine import MatchedRule
from policy_engine.errors import InvalidRequestError
from policy_engine.service.policies import PolicyRegistry
from policy_engine.service.validation import validate_action

__all__ = ["DEFAULT_POLICY_SET", "CheckInput", "CheckOutcome", "DecisionService"]

DEFAULT_POLICY_SET = "default"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckInput:
    action: Action
    policy_set: str = DEFAULT_POLICY_SET
    min_version: int = 0
    explain: bool = False
    request_id: str = ""


@dataclass(frozen=True)
class CheckOutcome:
    allowed: bool
    policy_set: str
    policy_version: int
    decision_id: str
    reason: str
    matched: tuple[MatchedRule, ...]
    denied_party: str


class DecisionService:
    """Answers checks against the registry's currently loaded policy versions."""

    def __init__(self, registry: PolicyRegistry) -> None:
        self._registry = registry

    async def check(self, request: CheckInput, timeout: float | None = None) -> CheckOutcome:
        """Decide one action; `timeout` bounds the wait for `min_version` to be loaded."""
        validate_action(request.action)
        policy_set = request.policy_set or DEFAULT_POLICY_SET
        policy = self._registry.get(policy_set)
        if policy.version < request.min_version:
            policy = await self._registry.wait_for(policy_set, request.min_version, timeout)
        for field, party in (("subject.id", request.action.subject), ("actor.id", request.action.actor)):
            if party is not None and party.id in policy.role_names:
                raise InvalidRequestError(field, "names a role of the policy set, not a principal")
        decision = decide_action(policy.engine, request.action)
        outcome = CheckOutcome(
            allowed=decision.allowed,
            policy_set=policy_set,
            policy_version=policy.version,
            decision_id=uuid.uuid4().hex,
            reason=decision.reason,
            matched=decision.matched,
            denied_party=decision.denied_party,
        )
        log.debug(
            "decision %s %s v%d allowed=%s",
            outcome.decision_id,
            policy_set,
            policy.version,
            outcome.allowed,
        )
        return outcome
