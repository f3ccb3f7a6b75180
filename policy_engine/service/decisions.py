"""Decide checks: pick the policy version, validate, apply the subject-AND-actor rule.

No transport here: the servicer converts proto to a CheckInput (BatchInput,
FilterInput, ListInput) and back.

Every request takes one LoadedPolicy snapshot from the registry, so all the
decisions of a batch are made by the same version, whatever is activated
meanwhile.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from policy_engine.actions import Action, ActionDecision, Party, ResourceRef, decide_action
from policy_engine.audit import AuditSink, DecisionRecord, NullSink
from policy_engine.auth.subjects import SubjectTokenResolver
from policy_engine.engine import MatchedRule
from policy_engine.errors import InvalidRequestError
from policy_engine.logs import bind_request
from policy_engine.metrics import METRICS
from policy_engine.service.explain import explain_denial
from policy_engine.service.listing import Listing, list_allowed
from policy_engine.service.policies import LoadedPolicy, PolicyRegistry
from policy_engine.service.threats import ThreatMonitor
from policy_engine.service.validation import validate_action, validate_types

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
    "Principal",
]

DEFAULT_POLICY_SET = "default"
log = logging.getLogger(__name__)

# Stand-ins that pass validation, to validate a request's shared part on its own.
_PROBE_ACTION = "probe"
_PROBE_RESOURCE = ResourceRef("", "probe")


@dataclass(frozen=True)
class CheckInput:
    action: Action
    policy_set: str = DEFAULT_POLICY_SET
    min_version: int = 0
    explain: bool = False
    request_id: str = ""
    subject_token: str = ""
    caller: str = ""


@dataclass(frozen=True)
class CheckOutcome:
    allowed: bool
    policy_set: str
    policy_version: int
    decision_id: str
    reason: str
    matched: tuple[MatchedRule, ...]
    denied_party: str
    failure: str = ""


@dataclass(frozen=True)
class Principal:
    """Who asks, where: the part a batch, a filter or a listing shares across its items."""

    tenant: str
    subject: Party
    actor: Party | None = None
    subject_token: str = ""
    caller: str = ""


@dataclass(frozen=True)
class BatchItem:
    """One action of a batch; `invalid` is set when converting it already failed."""

    action: str
    resource: ResourceRef
    context: Mapping[str, Any] = field(default_factory=dict)
    request_id: str = ""
    invalid: InvalidRequestError | None = None


@dataclass(frozen=True)
class BatchInput:
    principal: Principal
    items: tuple[BatchItem, ...]
    policy_set: str = DEFAULT_POLICY_SET
    min_version: int = 0
    explain: bool = False
    request_id: str = ""


@dataclass(frozen=True)
class ItemOutcome:
    """One item's decision; `error` is set (and allowed is False) when the item was invalid."""

    allowed: bool
    reason: str
    decision_id: str = ""
    error: str = ""
    matched: tuple[MatchedRule, ...] = ()
    denied_party: str = ""
    failure: str = ""


@dataclass(frozen=True)
class BatchOutcome:
    policy_set: str
    policy_version: int
    results: tuple[ItemOutcome, ...]


@dataclass(frozen=True)
class FilterInput:
    principal: Principal
    action: str
    candidates: tuple[BatchItem, ...]
    context: Mapping[str, Any] = field(default_factory=dict)
    policy_set: str = DEFAULT_POLICY_SET
    min_version: int = 0
    explain: bool = False
    request_id: str = ""


@dataclass(frozen=True)
class FilterOutcome:
    """Positions of the allowed candidates, and the outcome of each denied one, in order."""

    policy_set: str
    policy_version: int
    allowed: tuple[int, ...]
    denied: tuple[tuple[int, ItemOutcome], ...]


@dataclass(frozen=True)
class ListInput:
    principal: Principal
    action: str
    kind: str
    context: Mapping[str, Any] = field(default_factory=dict)
    policy_set: str = DEFAULT_POLICY_SET
    min_version: int = 0
    request_id: str = ""


@dataclass(frozen=True)
class ListOutcome:
    policy_set: str
    policy_version: int
    listing: Listing


class DecisionService:
    """Answers checks against the registry's currently loaded policy versions.

    Its collaborators are injected: end-user tokens (`subjects`), the decision
    log (`sink`, a NullSink by default) and threat signals (`threats`).
    """

    def __init__(
        self,
        registry: PolicyRegistry,
        *,
        subjects: SubjectTokenResolver | None = None,
        sink: AuditSink | None = None,
        threats: ThreatMonitor | None = None,
    ) -> None:
        self._registry = registry
        self._subjects = subjects or SubjectTokenResolver()
        self._sink: AuditSink = sink or NullSink()
        self._threats = threats

    async def check(self, request: CheckInput, timeout: float | None = None) -> CheckOutcome:
        """Decide one action; `timeout` bounds the wait for `min_version` to be loaded."""
        started = time.perf_counter()
        action = request.action
        verified = self._subjects.resolve(action.tenant, action.subject, action.actor, request.subject_token)
        action = replace(action, subject=verified.subject, actor=verified.actor)
        validate_action(action)
        policy = await self._policy(request.policy_set, request.min_version, timeout)
        bind_request(request_id=request.request_id, policy_set=policy.policy_set, policy_version=policy.version)
        _refuse_role_names(policy, action.subject, action.actor)
        validate_types(action, policy.schema)
        decision = self._decide(policy, action)
        if request.explain:
            decision = explain_denial(policy.engine, action, decision)
        outcome = CheckOutcome(
            allowed=decision.allowed,
            policy_set=policy.policy_set,
            policy_version=policy.version,
            decision_id=uuid.uuid4().hex,
            reason=decision.reason,
            matched=decision.matched,
            denied_party=decision.denied_party,
            failure=decision.failure,
        )
        self._record(policy, action, decision, outcome.decision_id, request.request_id, request.caller, started)
        log.debug("decided", extra={"decision_id": outcome.decision_id, "allowed": outcome.allowed})
        return outcome

    def _decide(self, policy: LoadedPolicy, action: Action) -> ActionDecision:
        """decide_action, behind the quarantine, feeding the threat signals."""
        threats = self._threats
        if threats is None:
            return decide_action(policy.engine, action)
        for role, party in (("subject", action.subject), ("actor", action.actor)):
            if party is not None and threats.is_quarantined(action.tenant, party.id):
                return ActionDecision(
                    allowed=False,
                    reason=f"{role} {party.id!r} is quarantined",
                    denied_party=role,
                    failure="quarantined",
                )
        decision = decide_action(policy.engine, action)
        if not decision.allowed:
            threats.observe(action.tenant, action.subject.id, "subject", False)
            if action.actor is not None:
                threats.observe(action.tenant, action.actor.id, "actor", False)
        return decision

    def _record(
        self,
        policy: LoadedPolicy,
        action: Action,
        decision: ActionDecision,
        decision_id: str,
        request_id: str,
        caller: str,
        started: float,
    ) -> None:
        elapsed = time.perf_counter() - started
        METRICS.decisions.labels(policy.policy_set, "allow" if decision.allowed else "deny").inc()
        METRICS.decision_seconds.observe(elapsed)
        actor = action.actor
        self._sink.record(
            DecisionRecord(
                decision_id=decision_id,
                decided_at=datetime.now(UTC),
                policy_set=policy.policy_set,
                policy_version=policy.version,
                tenant=action.tenant,
                subject=action.subject.id,
                actor=actor.id if actor is not None else "",
                caller=caller,
                action=action.action,
                resource=action.resource.key,
                allowed=decision.allowed,
                rule=decision.matched[0].text if decision.matched else "",
                reason=decision.reason,
                request_id=request_id,
                latency_us=int(elapsed * 1_000_000),
                attributes={
                    "subject": action.subject.attributes,
                    "actor": actor.attributes if actor is not None else {},
                    "resource": action.resource.attributes,
                    "context": action.context,
                },
            )
        )

    def _verified(self, principal: Principal) -> Principal:
        verified = self._subjects.resolve(
            principal.tenant, principal.subject, principal.actor, principal.subject_token
        )
        return replace(principal, subject=verified.subject, actor=verified.actor)

    async def batch_check(self, request: BatchInput, timeout: float | None = None) -> BatchOutcome:
        """Decide every item with one policy version; an invalid item gets its own error."""
        principal = self._verified(request.principal)
        _validate_shared(principal)
        policy = await self._policy(request.policy_set, request.min_version, timeout)
        _refuse_role_names(policy, principal.subject, principal.actor)
        ids = _DecisionIds()
        bare = _bare(principal)
        results = tuple(
            self._decide_item(
                policy, principal, bare, item, f"items[{index}].", request.explain, ids, request.request_id
            )
            for index, item in enumerate(request.items)
        )
        log.debug(
            "batch %s %s v%d items=%d", request.request_id, policy.policy_set, policy.version, len(results)
        )
        return BatchOutcome(policy.policy_set, policy.version, results)

    async def filter_allowed(self, request: FilterInput, timeout: float | None = None) -> FilterOutcome:
        """Split the candidates into allowed and denied, keeping their order."""
        principal = self._verified(request.principal)
        _validate_shared(principal, request.action, request.context)
        policy = await self._policy(request.policy_set, request.min_version, timeout)
        _refuse_role_names(policy, principal.subject, principal.actor)
        allowed: list[int] = []
        denied: list[tuple[int, ItemOutcome]] = []
        ids = _DecisionIds()
        bare = _bare(principal)
        for index, candidate in enumerate(request.candidates):
            item = BatchItem(request.action, candidate.resource, request.context, "", candidate.invalid)
            outcome = self._decide_item(
                policy, principal, bare, item, f"candidates[{index}].", request.explain, ids, request.request_id
            )
            if outcome.allowed:
                allowed.append(index)
            else:
                denied.append((index, outcome))
        return FilterOutcome(policy.policy_set, policy.version, tuple(allowed), tuple(denied))

    async def list_allowed(self, request: ListInput, timeout: float | None = None) -> ListOutcome:
        """What the policy allows for one resource kind, without a candidate list."""
        request = replace(request, principal=self._verified(request.principal))
        _validate_shared(request.principal, request.action, request.context)
        if not request.kind:
            raise InvalidRequestError("kind", "is required")
        try:
            validate_action(_probe(request.principal, request.action, request.context, request.kind))
        except InvalidRequestError as exc:  # only the kind is left to fail: name it as the API does
            raise InvalidRequestError("kind", exc.message) from None
        policy = await self._policy(request.policy_set, request.min_version, timeout)
        _refuse_role_names(policy, request.principal.subject, request.principal.actor)
        listing = list_allowed(
            policy.engine,
            tenant=request.principal.tenant,
            subject=request.principal.subject,
            actor=request.principal.actor,
            action=request.action,
            kind=request.kind,
            context=request.context,
        )
        return ListOutcome(policy.policy_set, policy.version, listing)

    def _decide_item(
        self,
        policy: LoadedPolicy,
        principal: Principal,
        bare: Principal,
        item: BatchItem,
        where: str,
        explain: bool,
        decision_id: Callable[[], str],
        request_id: str,
    ) -> ItemOutcome:
        if item.invalid is not None:
            return _invalid(item.invalid, where)
        started = time.perf_counter()
        action = Action(
            tenant=principal.tenant,
            subject=principal.subject,
            action=item.action,
            resource=item.resource,
            actor=principal.actor,
            context=item.context,
        )
        try:
            # The shared part (with its attributes) was validated once for the whole request.
            validate_action(
                Action(bare.tenant, bare.subject, item.action, item.resource, bare.actor, item.context)
            )
            validate_types(action, policy.schema)
        except InvalidRequestError as exc:
            return _invalid(exc, where)
        decision = self._decide(policy, action)
        if explain:
            decision = explain_denial(policy.engine, action, decision)
        outcome = ItemOutcome(
            allowed=decision.allowed,
            reason=decision.reason,
            decision_id=decision_id(),
            matched=decision.matched,
            denied_party=decision.denied_party,
            failure=decision.failure,
        )
        self._record(
            policy, action, decision, outcome.decision_id, item.request_id or request_id, principal.caller, started
        )
        return outcome

    async def _policy(self, policy_set: str, min_version: int, timeout: float | None) -> LoadedPolicy:
        return await self._registry.at_least(policy_set or DEFAULT_POLICY_SET, min_version, timeout)


def _probe(
    principal: Principal, action: str, context: Mapping[str, Any], kind: str = ""
) -> Action:
    return Action(
        tenant=principal.tenant,
        subject=principal.subject,
        action=action,
        resource=ResourceRef(kind, _PROBE_RESOURCE.id),
        actor=principal.actor,
        context=context,
    )


def _validate_shared(
    principal: Principal, action: str = _PROBE_ACTION, context: Mapping[str, Any] | None = None
) -> None:
    """Refuse the whole request when what its items share (tenant, subject, actor, ...) is invalid."""
    validate_action(_probe(principal, action, context or {}))


def _refuse_role_names(policy: LoadedPolicy, subject: Party, actor: Party | None) -> None:
    for name, party in (("subject.id", subject), ("actor.id", actor)):
        if party is not None and party.id in policy.role_names:
            raise InvalidRequestError(name, "names a role of the policy set, not a principal")


class _DecisionIds:
    """Decision ids for the items of one request: one random prefix, then the item's number."""

    def __init__(self) -> None:
        self._prefix = uuid.uuid4().hex[:24]
        self._next = 0

    def __call__(self) -> str:
        self._next += 1
        return f"{self._prefix}{self._next:08x}"


def _bare(principal: Principal) -> Principal:
    """The principal without attributes: what is left to validate per item once it passed as a whole."""
    actor = Party(principal.actor.id) if principal.actor is not None else None
    return Principal(principal.tenant, Party(principal.subject.id), actor)


def _invalid(error: InvalidRequestError, where: str) -> ItemOutcome:
    field_name = error.field
    if where.startswith("candidates") and field_name.startswith("resource."):
        field_name = field_name.removeprefix("resource.")
    message = f"{where}{field_name}: {error.message}"
    return ItemOutcome(allowed=False, reason=f"invalid: {message}", error=message, failure="invalid")
