"""Decide checks: pick the policy version, validate, apply the subject-AND-actor rule.

No transport here: the servicer converts proto to a CheckInput (BatchInput,
FilterInput, ListInput) and back.

Every request takes one LoadedPolicy snapshot from the registry, so all the
decisions of a batch are made by the same version, whatever is activated
meanwhile.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, NamedTuple

from policy_engine import limits
from policy_engine.actions import (
    NO_ATTRIBUTES,
    Action,
    ActionBinder,
    ActionDecision,
    Party,
    ResourceRef,
    resource_key,
)
from policy_engine.audit import (
    PLAIN_ITEM_ATTRIBUTES,
    AuditSink,
    DecisionGroup,
    DecisionRecord,
    GroupItem,
    NullSink,
    PlainItems,
    RoomLine,
)
from policy_engine.auth.subjects import SubjectTokenResolver
from policy_engine.bundle.ids import fold_id, fold_resource
from policy_engine.bundle.schema import CASEFOLD
from policy_engine.engine import MatchedRule
from policy_engine.errors import DeadlineExceededError, InvalidRequestError
from policy_engine.logs import bind_request
from policy_engine.metrics import METRICS
from policy_engine.service.explain import explain_denial
from policy_engine.service.listing import Listing, list_allowed
from policy_engine.service.policies import LoadedPolicy, PolicyRegistry
from policy_engine.service.threats import ThreatMonitor
from policy_engine.service.validation import (
    canonical_action,
    canonical_attributes,
    canonical_ids,
    canonical_parties,
    fold_delegates,
    item_types_can_fail,
    validate_action,
    validate_item,
    validate_item_types,
    validate_party_types,
    validate_resource,
    validate_types,
)

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
    "PlainCheck",
    "Principal",
]

DEFAULT_POLICY_SET = "default"
log = logging.getLogger(__name__)

# Stand-ins that pass validation, to validate a request's shared part on its own.
_PROBE_ACTION = "probe"
_PROBE_RESOURCE = ResourceRef("", "probe")


class CheckInput(NamedTuple):
    action: Action
    policy_set: str = DEFAULT_POLICY_SET
    min_version: int = 0
    explain: bool = False
    request_id: str = ""
    subject_token: str = ""
    caller: str = ""


class PlainCheck(NamedTuple):
    """A Check that carries nothing but names: no subject token, actor, attributes, context or
    explain (see DecisionService.check_remembered)."""

    policy_set: str
    min_version: int
    tenant: str
    subject: str
    action: str
    kind: str
    resource_id: str
    request_id: str


class CheckOutcome(NamedTuple):
    allowed: bool
    policy_set: str
    policy_version: int
    decision_id: str
    reason: str
    matched: tuple[MatchedRule, ...]
    denied_party: str
    failure: str = ""


class Principal(NamedTuple):
    """Who asks, where: the part a batch, a filter or a listing shares across its items."""

    tenant: str
    subject: Party
    actor: Party | None = None
    subject_token: str = ""
    caller: str = ""
    # The earlier actors of a verified delegation chain (auth/subjects.py), the most recent first.
    delegates: tuple[Party, ...] = ()


class BatchItem(NamedTuple):
    """One action of a batch; `invalid` is set when converting it already failed."""

    action: str
    resource: ResourceRef
    context: Mapping[str, Any] = NO_ATTRIBUTES
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


class ItemOutcome(NamedTuple):
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
        log_wait: float = 2.0,
    ) -> None:
        """`log_wait`: how long a request may wait for room in the decision log's queue (the
        writer behind) before it is decided anyway and the log's loss policy applies."""
        self._registry = registry
        self._subjects = subjects or SubjectTokenResolver()
        self._sink: AuditSink = sink or NullSink()
        # With the decision log off, no audit record is built at all.
        self._logging = not isinstance(self._sink, NullSink)
        self._room = RoomLine(self._sink)
        self._threats = threats
        self._log_wait = log_wait
        # Per policy set, for its loaded version: plain Checks (see _plain_key) that passed every
        # check, with the binder's decision. "May this user call this tool" recurs all the time;
        # a repeat skips validating and binding again (the dynamic parts, quarantine, threat
        # signals, id, metrics and log, are still per request).
        self._plain: dict[str, tuple[LoadedPolicy, dict[tuple[str, ...], ActionDecision]]] = {}

    async def check(self, request: CheckInput, timeout: float | None = None) -> CheckOutcome:
        """Decide one action; `timeout` bounds the wait for `min_version` to be loaded."""
        if self._logging and not self._room.has_room(1):
            await self._wait_for_log(1, timeout)
        started = time.perf_counter()
        action = request.action
        plain = _plain_key(request)
        policy = self._loaded(request.policy_set, request.min_version)
        decided = None
        delegates: tuple[Party, ...] = ()
        if policy is not None and plain is not None:
            # Decided before under this version: it passed every static check then.
            decided = self._plain_checks(policy).get(plain)
        if decided is None:
            verified = self._subjects.resolve(action.tenant, action.subject, action.actor, request.subject_token)
            if verified.subject is not action.subject or verified.actor is not action.actor:
                action = action._replace(subject=verified.subject, actor=verified.actor)
            delegates = verified.delegates
            validate_action(action)
            if policy is None:
                policy = await self._policy(request.policy_set, request.min_version, timeout)
        bind_request(request_id=request.request_id, policy_set=policy.policy_set, policy_version=policy.version)
        if decided is None:
            validate_types(action, policy.schema)
            action = canonical_action(action, policy.schema)
            delegates = fold_delegates(delegates, policy.schema)
            _refuse_role_names(policy, action.subject, action.actor, delegates)
            decided = ActionBinder(
                policy.engine, action.tenant, action.subject, action.actor, delegates=delegates
            ).decide(action.action, action.resource, action.context)
            if plain is not None and action is request.action:
                remembered = self._plain_checks(policy)
                if len(remembered) >= _PLAIN_LIMIT:
                    remembered.clear()
                remembered[plain] = decided
        actor = action.actor
        actor_id = actor.id if actor is not None else None
        decision = self._judged(decided, action.tenant, action.subject.id, actor_id)
        if request.explain:
            decision = explain_denial(policy.engine, action, decision)
        return self._concluded(
            policy, decision, started, request.caller, request.request_id, action.tenant,
            action.subject.id, actor_id or "", action.action, action.resource.key,
            {
                "subject": action.subject.attributes,
                "actor": actor.attributes if actor is not None else NO_ATTRIBUTES,
                "resource": action.resource.attributes,
                "context": action.context,
            },
        )

    def check_remembered(self, request: PlainCheck, caller: str) -> CheckOutcome | None:
        """The Check `request` when it was decided before under the loaded version, without
        waiting for anything: its outcome, made and logged as `check` would; None when `check`
        must take it (not decided yet, the version not loaded, the decision log full, an
        overlong request_id).

        A Check of names only is decided by those names and the version: `check` remembers
        its decision after every validation has passed (see _plain_key). This path skips
        building and validating the request's objects, which is most of a repeated Check's
        cost; quarantine, threat signals, id, metrics and log are still per request."""
        policy_set, min_version, tenant, subject, action, kind, resource_id, request_id = request
        # (An overlong policy_set names no loaded set: check refuses it.)
        if len(request_id) > limits.MAX_ID_LENGTH or (self._logging and not self._room.has_room(1)):
            return None
        started = time.perf_counter()
        policy = self._loaded(policy_set, min_version)
        if policy is None:
            return None
        decided = self._plain_checks(policy).get(_names_key(tenant, subject, action, kind, resource_id))
        if decided is None:
            return None
        bind_request(request_id=request_id, policy_set=policy.policy_set, policy_version=policy.version)
        return self._concluded(
            policy, self._judged(decided, tenant, subject, None), started, caller, request_id,
            tenant, subject, "", action, resource_key(kind, resource_id), _NAMES_ONLY,
        )

    def _judged(
        self, decided: ActionDecision, tenant: str, subject: str, actor: str | None
    ) -> ActionDecision:
        """The decision for these parties now: a quarantine's denial, or `decided` (a denial
        of which feeds the threat signals)."""
        quarantined = self._quarantined(tenant, subject, actor)
        if quarantined is not None:
            return quarantined
        return self._observed(decided, tenant, subject, actor)

    def _concluded(
        self,
        policy: LoadedPolicy,
        decision: ActionDecision,
        started: float,
        caller: str,
        request_id: str,
        tenant: str,
        subject: str,
        actor: str,
        action: str,
        resource: str,
        attributes: Mapping[str, Mapping[str, Any]],
    ) -> CheckOutcome:
        """A Check's outcome under a new decision id, counted and logged."""
        decision_id = _IDS.next()
        allowed = decision.allowed
        # tuple.__new__ with the fields in order: a named tuple's own __new__ is a Python
        # function, one more frame on every Check.
        outcome = tuple.__new__(CheckOutcome, (
            allowed, policy.policy_set, policy.version, decision_id, decision.reason,
            decision.matched, decision.denied_party, decision.failure,
        ))
        elapsed = time.perf_counter() - started
        METRICS.count_decisions(policy.policy_set, allowed)
        METRICS.observe_decision_seconds(elapsed)
        if self._logging:
            self._sink.record(tuple.__new__(DecisionRecord, (
                decision_id, datetime.now(UTC), policy.policy_set, policy.version, tenant, subject,
                actor, caller, action, resource, allowed,
                decision.matched[0].text if decision.matched else "", decision.reason, request_id,
                int(elapsed * 1_000_000), attributes,
            )))
        if log.isEnabledFor(logging.DEBUG):
            log.debug("decided", extra={"decision_id": decision_id, "allowed": allowed})
        return outcome

    async def _wait_for_log(self, count: int, timeout: float | None) -> None:
        """Backpressure from the decision log: a writer that falls behind slows requests down
        (up to `log_wait`, and the request's deadline) instead of losing their entries."""
        limit = self._log_wait if timeout is None else max(min(self._log_wait, timeout), 0.0)
        started = time.monotonic()
        room = await self._room.wait(count, limit)
        METRICS.audit_wait_seconds.inc(time.monotonic() - started)
        METRICS.audit_waits.labels(outcome="room" if room else "timed_out").inc()
        if not room and timeout is not None and timeout <= self._log_wait:
            # The caller's deadline, not the log's wait, ran out: nobody is waiting for this answer.
            raise DeadlineExceededError("deadline passed while waiting for decision log room; not decided")
        if not room:
            log.warning("decision log queue still full after %.2fs; its loss policy applies", limit)

    def _plain_checks(self, policy: LoadedPolicy) -> dict[tuple[str, ...], ActionDecision]:
        """The plain Checks remembered for `policy` (those of an earlier version are dropped)."""
        known = self._plain.get(policy.policy_set)
        if known is None or known[0] is not policy:
            known = self._plain[policy.policy_set] = (policy, {})
        return known[1]

    def _decide(
        self,
        binder: ActionBinder,
        quarantined: ActionDecision | None,
        action: str,
        resource: ResourceRef,
        context: Mapping[str, Any],
    ) -> ActionDecision:
        """The binder's decision, unless its parties are `quarantined`; denials feed the threat
        signals."""
        if quarantined is not None:
            return quarantined
        actor = binder.actor
        return self._observed(
            binder.decide(action, resource, context), binder.tenant, binder.subject.id,
            actor.id if actor is not None else None,
        )

    def _quarantined(self, tenant: str, subject: str, actor: str | None) -> ActionDecision | None:
        """The denial every action of a quarantined subject, actor or (subject, actor) pair gets;
        None when none is."""
        threats = self._threats
        if threats is None:
            return None
        held = threats.quarantine_of(tenant, subject, actor)
        if held is None:
            return None
        role, name = held
        return ActionDecision(False, f"{role} {name!r} is quarantined", (), role, "quarantined")

    def _observed(
        self, decision: ActionDecision, tenant: str, subject: str, actor: str | None
    ) -> ActionDecision:
        """`decision`, a denial of which feeds the threat signals (parties by id)."""
        threats = self._threats
        if threats is None or decision.allowed:
            return decision
        threats.observe_denial(tenant, subject, actor)
        return decision

    def _verified(self, principal: Principal) -> Principal:
        verified = self._subjects.resolve(
            principal.tenant, principal.subject, principal.actor, principal.subject_token
        )
        if verified.subject is principal.subject and verified.actor is principal.actor:
            return principal
        return principal._replace(subject=verified.subject, actor=verified.actor, delegates=verified.delegates)

    async def batch_check(self, request: BatchInput, timeout: float | None = None) -> BatchOutcome:
        """Decide every item with one policy version; an invalid item gets its own error."""
        if self._logging and not self._room.has_room(len(request.items)):
            await self._wait_for_log(len(request.items), timeout)
        principal = self._verified(request.principal)
        _validate_shared(principal)
        policy = await self._policy(request.policy_set, request.min_version, timeout)
        principal = canonical_ids(principal, policy.schema)
        _refuse_role_names(policy, principal.subject, principal.actor, principal.delegates)
        batch = _Batch(self, policy, principal, request.request_id, request.explain)
        results = tuple(batch.decide_all(request.items, "items"))
        batch.finish()
        log.debug(
            "batch %s %s v%d items=%d", request.request_id, policy.policy_set, policy.version, len(results)
        )
        return BatchOutcome(policy.policy_set, policy.version, results)

    async def filter_allowed(self, request: FilterInput, timeout: float | None = None) -> FilterOutcome:
        """Split the candidates into allowed and denied, keeping their order."""
        if self._logging and not self._room.has_room(len(request.candidates)):
            await self._wait_for_log(len(request.candidates), timeout)
        principal = self._verified(request.principal)
        _validate_shared(principal, request.action, request.context)
        policy = await self._policy(request.policy_set, request.min_version, timeout)
        principal = canonical_ids(principal, policy.schema)
        _refuse_role_names(policy, principal.subject, principal.actor, principal.delegates)
        action = fold_id(request.action) if _folds(policy) else request.action
        context = canonical_attributes(policy.schema, "context", request.context, "context")
        allowed: list[int] = []
        denied: list[tuple[int, ItemOutcome]] = []
        # The action and the context are the request's, validated with the shared part.
        batch = _Batch(self, policy, principal, request.request_id, request.explain, action, context)
        for index, outcome in enumerate(batch.decide_all(request.candidates, "candidates")):
            if outcome.allowed:
                allowed.append(index)
            else:
                denied.append((index, outcome))
        batch.finish()
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
        principal = canonical_ids(request.principal, policy.schema)
        _refuse_role_names(policy, principal.subject, principal.actor, principal.delegates)
        listing = list_allowed(
            policy.engine,
            tenant=principal.tenant,
            subject=principal.subject,
            actor=principal.actor,
            delegates=principal.delegates,
            action=fold_id(request.action) if _folds(policy) else request.action,
            kind=request.kind,
            context=canonical_attributes(policy.schema, "context", request.context, "context"),
        )
        return ListOutcome(policy.policy_set, policy.version, listing)

    async def _policy(self, policy_set: str, min_version: int, timeout: float | None) -> LoadedPolicy:
        return await self._registry.at_least(policy_set or DEFAULT_POLICY_SET, min_version, timeout)

    def _loaded(self, policy_set: str, min_version: int) -> LoadedPolicy | None:
        """The set's policy when it is loaded and recent enough already (no need to wait)."""
        policy = self._registry.snapshot().get(policy_set or DEFAULT_POLICY_SET)
        if policy is not None and policy.version >= min_version:
            return policy
        return None


class _Batch:
    """The decisions of one BatchCheck or FilterAllowed, made with one policy version.

    What the items share is prepared once: the parties bound (ActionBinder), their attribute
    types checked (an error there is still each item's own error, in the order validate_types
    finds it), the quarantine looked up, the decision ids. The items are logged and counted
    when the batch is done; each item's latency is the batch's time divided by the number of
    items decided.
    """

    def __init__(
        self,
        service: DecisionService,
        policy: LoadedPolicy,
        principal: Principal,
        request_id: str,
        explain: bool,
        action: str | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> None:
        self._started = time.perf_counter()
        self._service = service
        self._policy = policy
        self._principal = principal
        self._request_id = request_id
        self._explain = explain
        # FilterAllowed: one action and context for every candidate, validated with the shared part.
        self._action = action
        self._context = context
        self._types_can_fail_by_kind: dict[str, bool] = {}
        self._binder = ActionBinder(
            policy.engine, principal.tenant, principal.subject, principal.actor, delegates=principal.delegates
        )
        actor = principal.actor
        self._quarantined = service._quarantined(  # noqa: SLF001
            principal.tenant, principal.subject.id, actor.id if actor is not None else None
        )
        self._party_error: InvalidRequestError | None = None
        try:
            validate_party_types(policy.schema, principal.subject, principal.actor)
            canonical = canonical_parties(principal, policy.schema)
        except InvalidRequestError as exc:
            self._party_error = exc
        else:
            if canonical is not principal:
                self._binder = ActionBinder(policy.engine, canonical.tenant, canonical.subject, canonical.actor)
        self._folding = _folds(policy)
        # Decision ids: one random prefix per request, then the decided item's number.
        self._id_prefix = _IDS.next()[:24]
        # What the decision log keeps of each decided item, when it is on: a GroupItem's fields,
        # with "" for the attributes of an item that has none (then it is a StoredItem).
        self._decided: list[tuple[str, str, str, bool, str, str, str, Any]] = []
        self._item_attributes = False  # some item has attributes of its own
        self._count = self._allowed = 0

    def decide_all(self, items: Sequence[BatchItem], where: str) -> list[ItemOutcome]:
        """Each item's outcome, in order; `where` names the items' field in errors."""
        policy = self._policy
        service = self._service
        binder, quarantined = self._binder, self._quarantined
        shared_action, shared_context = self._action, self._context
        filtering = shared_action is not None
        decided = self._decided if self._service._logging else None  # noqa: SLF001
        prefix, number, allowed_count = self._id_prefix, self._count, self._allowed
        default_request_id = self._request_id
        # An item without attributes (and, in a batch, without context) is valid or not by its
        # action and resource alone: each distinct one is checked once per request.
        plain_valid: set[tuple[str, str, str]] = set()
        outcomes: list[ItemOutcome] = []
        for index, (action_name, resource, context, request_id, invalid) in enumerate(items):
            if invalid is not None:
                outcomes.append(_invalid(invalid, f"{where}[{index}]."))
                continue
            if filtering:  # FilterAllowed: the request's action and context, validated already
                action_name, context = shared_action, shared_context
            plain_key = (
                (action_name, resource.kind, resource.id)
                if not resource.attributes and (filtering or not context)
                else None
            )
            if plain_key is None or plain_key not in plain_valid:
                try:
                    self._validate(action_name, resource, context)
                    if plain_key is None:
                        resource, context = self._canonical_item(resource, context)
                except InvalidRequestError as exc:
                    outcomes.append(_invalid(exc, f"{where}[{index}]."))
                    continue
                if plain_key is not None:
                    plain_valid.add(plain_key)
            if self._folding:
                resource = fold_resource(resource)
                if not filtering:
                    action_name = fold_id(action_name)
            decision = service._decide(binder, quarantined, action_name, resource, context)  # noqa: SLF001
            if self._explain:
                principal = self._principal
                action = Action(principal.tenant, principal.subject, action_name, resource, principal.actor, context)
                decision = explain_denial(policy.engine, action, decision)
            number += 1
            suffix = f"{number:08x}"
            allowed, reason, matched, denied_party, failure = decision
            allowed_count += allowed
            if decided is not None:
                # An item's own attributes, or "" (a StoredItem's hashed attributes) when it has none.
                own: Mapping[str, Any] | str = ""
                if resource.attributes or context:
                    own = {"resource": resource.attributes, "context": context}
                    self._item_attributes = True
                decided.append((
                    suffix, action_name, resource.key, allowed, matched[0].text if matched else "", reason,
                    request_id or default_request_id, own,
                ))
            outcomes.append(ItemOutcome(allowed, reason, prefix + suffix, "", matched, denied_party, failure))
        self._count, self._allowed = number, allowed_count
        return outcomes

    def _validate(self, action_name: str, resource: ResourceRef, context: Mapping[str, Any]) -> None:
        """Raise InvalidRequestError for the first field of the item that is not valid."""
        if self._action is not None:  # FilterAllowed: action and context validated with the shared part
            validate_resource(resource)
        else:
            validate_item(action_name, resource, context)
        if self._party_error is not None:
            raise self._party_error
        if resource.attributes or context or self._types_can_fail(resource.kind):
            validate_item_types(self._policy.schema, resource, context)

    def _canonical_item(
        self, resource: ResourceRef, context: Mapping[str, Any]
    ) -> tuple[ResourceRef, Mapping[str, Any]]:
        """The item's IP-typed attributes in canonical form (FilterAllowed's context is already)."""
        schema = self._policy.schema
        attributes = canonical_attributes(schema, "resource", resource.attributes, "resource.attributes")
        if attributes is not resource.attributes:
            resource = resource._replace(attributes=attributes)
        if self._action is None:
            context = canonical_attributes(schema, "context", context, "context")
        return resource, context

    def _types_can_fail(self, kind: str) -> bool:
        known = self._types_can_fail_by_kind.get(kind)
        if known is None:
            known = self._types_can_fail_by_kind[kind] = item_types_can_fail(self._policy.schema, kind)
        return known

    def finish(self) -> None:
        """Count and time every decision made, and hand them to the decision log as one group."""
        count, allowed = self._count, self._allowed
        if not count:
            return
        each = (time.perf_counter() - self._started) / count
        policy = self._policy
        if allowed:
            METRICS.count_decisions(policy.policy_set, True, allowed)
        if allowed < count:
            METRICS.count_decisions(policy.policy_set, False, count - allowed)
        METRICS.observe_decision_seconds(each, count)
        if not self._service._logging:  # noqa: SLF001
            return
        principal = self._principal
        subject, actor = principal.subject, principal.actor
        self._service._sink.record_group(  # noqa: SLF001
            DecisionGroup(
                self._id_prefix,
                datetime.now(UTC),
                policy.policy_set,
                policy.version,
                principal.tenant,
                subject.id,
                actor.id if actor is not None else "",
                principal.caller,
                int(each * 1_000_000),
                {"subject": subject.attributes, "actor": actor.attributes if actor is not None else NO_ATTRIBUTES},
                self._logged_items(),
            )
        )

    def _logged_items(self) -> Sequence[GroupItem]:
        if not self._item_attributes:
            return PlainItems(self._decided)
        return [row if row[7] else GroupItem(*row[:7], PLAIN_ITEM_ATTRIBUTES) for row in self._decided]


class _DecisionIds:
    """Decision ids: 32 hex digits, the time in seconds since the epoch (8) then 96 random bits.

    The time comes first so that ids are stored in about the order they are made: the decision
    log's unique index on them then grows at its end, as its other indexes do (subject, tenant
    and time), instead of taking each new id at a random page. With random ids, a commit of a
    few hundred Checks rewrote a few hundred index pages (SQLite's write-ahead log wrote and
    fsynced them all), more of them as the log grows. A BatchCheck's ids share their first 24
    digits (the time and 64 random bits).

    The random digits are drawn from os.urandom 256 ids at a time: os.urandom is a system call,
    and it lets go of the GIL: under load the decision log's flusher thread takes it, and the
    serving thread waits tens of microseconds to get it back, on every Check. A forked child
    starts a pool of its own (its parent's would repeat ids).
    """

    _PER_DRAW = 256

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._pool: list[str] = []
        self._lock = threading.Lock()
        os.register_at_fork(after_in_child=self._forget)

    def next(self) -> str:
        with self._lock:
            if not self._pool:
                drawn = os.urandom(12 * self._PER_DRAW).hex()
                self._pool = [drawn[start : start + 24] for start in range(0, len(drawn), 24)]
            return f"{int(self._clock()) & 0xFFFFFFFF:08x}{self._pool.pop()}"

    def _forget(self) -> None:
        self._pool = []
        self._lock = threading.Lock()


_IDS = _DecisionIds()


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


# The attributes a Check of names only logs.
_NAMES_ONLY: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    "subject": NO_ATTRIBUTES, "actor": NO_ATTRIBUTES, "resource": NO_ATTRIBUTES, "context": NO_ATTRIBUTES,
})

# Plain Checks remembered per policy version (then forgotten all at once and learnt again).
_PLAIN_LIMIT = 65_536


def _plain_key(request: CheckInput) -> tuple[str, ...] | None:
    """The request's identity when it carries nothing but names (no token, actor, attributes,
    context or explain), so that validating and deciding it is a function of these names and the
    policy version; None otherwise."""
    action = request.action
    resource = action.resource
    if (
        request.subject_token or request.explain or action.actor is not None or action.context
        or action.subject.attributes or resource.attributes
    ):
        return None
    return _names_key(action.tenant, action.subject.id, action.action, resource.kind, resource.id)


def _names_key(tenant: str, subject: str, action: str, kind: str, resource_id: str) -> tuple[str, ...]:
    """The key of a plain Check's remembered decision: built here only, so that check and
    check_remembered cannot put the names in different orders (and find another's decision)."""
    return (tenant, subject, action, kind, resource_id)


def _folds(policy: LoadedPolicy) -> bool:
    return policy.schema.id_compare == CASEFOLD


def _refuse_role_names(
    policy: LoadedPolicy, subject: Party, actor: Party | None, delegates: tuple[Party, ...] = ()
) -> None:
    for name, party in (("subject.id", subject), ("actor.id", actor)):
        if party is not None and party.id in policy.engine.role_names:
            raise InvalidRequestError(name, "names a role of the policy set, not a principal")
    for party in delegates:
        if party.id in policy.engine.role_names:
            raise InvalidRequestError("subject_token", f"act chain: {party.id!r} names a role of the policy set")


def _invalid(error: InvalidRequestError, where: str) -> ItemOutcome:
    field_name = error.field
    if where.startswith("candidates") and field_name.startswith("resource."):
        field_name = field_name.removeprefix("resource.")
    message = f"{where}{field_name}: {error.message}"
    return ItemOutcome(allowed=False, reason=f"invalid: {message}", error=message, failure="invalid")
