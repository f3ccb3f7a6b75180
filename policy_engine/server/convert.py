"""Pure functions between protobuf messages and the core's types. No I/O, no decisions."""

from __future__ import annotations

import math

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from google.protobuf import struct_pb2

from policy_engine import limits
from policy_engine.actions import NO_ATTRIBUTES, Action, Party, ResourceRef
from policy_engine.bundle.loader import POLICY_FILE
from policy_engine.engine import MatchedRule
from policy_engine.auth.tokens import MAX_TOKEN_BYTES
from policy_engine.errors import InvalidRequestError
from policy_engine.service import (
    BatchInput,
    BatchItem,
    BatchOutcome,
    CheckInput,
    CheckOutcome,
    FilterInput,
    FilterOutcome,
    ItemOutcome,
    ListInput,
    ListOutcome,
    PlainCheck,
    Principal,
)
from policy_engine.v1 import authorization_pb2, types_pb2

__all__ = [
    "batch_input",
    "batch_response",
    "check_input",
    "check_response",
    "filter_input",
    "filter_response",
    "list_input",
    "list_response",
    "plain_check",
    "reason_code",
]

_FAILURE = {
    "": types_pb2.FAILURE_UNSPECIFIED,
    "no_role": types_pb2.FAILURE_NO_ROLE,
    "no_matching_rule": types_pb2.FAILURE_NO_MATCHING_RULE,
    "deny_rule": types_pb2.FAILURE_DENY_RULE,
    "condition": types_pb2.FAILURE_CONDITION,
    "actor": types_pb2.FAILURE_ACTOR,
    "evaluation_error": types_pb2.FAILURE_EVALUATION_ERROR,
    "invalid": types_pb2.FAILURE_INVALID,
}


# What a caller without the right to read policy text learns instead of the listing's reasons.
WITHHELD_PARTIAL_REASON = "partial: the reasons need the authz:explain scope"


def reason_code(allowed: bool, failure: str) -> str:
    """The opaque reason a caller gets when it may not read policy text (see sees_policy_text):
    "allowed", or the kind of denial ("deny_rule", "no_matching_rule", "actor", "quarantined",
    "invalid", ...). With the decision id, an operator finds the full reason in the decision log."""
    if allowed:
        return "allowed"
    return failure or "denied"


class _Principled(Protocol):
    """The fields every AuthorizationService request shares."""

    policy_set: str
    tenant: str
    subject: types_pb2.Entity
    subject_token: str
    actor: types_pb2.Entity
    request_id: str

    def HasField(self, name: str) -> bool: ...  # noqa: N802 - protobuf's name


def check_input(request: authorization_pb2.CheckRequest, caller: str = "") -> CheckInput:
    principal = _principal(request, caller)
    action = Action(
        tenant=principal.tenant,
        subject=principal.subject,
        action=request.action,
        resource=ResourceRef(
            kind=request.resource.kind,
            id=request.resource.id,
            attributes=_carried_struct(request.resource, "attributes", "resource.attributes"),
        ),
        actor=principal.actor,
        context=_carried_struct(request, "context", "context"),
    )
    return CheckInput(
        action=action,
        policy_set=request.policy_set,
        min_version=request.min_version,
        explain=request.explain,
        request_id=request.request_id,
        subject_token=principal.subject_token,
        caller=caller,
    )


def plain_check(request: authorization_pb2.CheckRequest) -> PlainCheck | None:
    """The request as a PlainCheck when it carries nothing but names; None otherwise (then
    check_input converts it). An empty context, attributes or actor counts as absent, as
    check_input reads them."""
    if request.subject_token or request.explain:
        return None
    subject, resource = request.subject, request.resource
    if (
        _carries(request, "context")
        or _carries(subject, "attributes")
        or _carries(resource, "attributes")
        or _carries_actor(request)
    ):
        return None
    # tuple.__new__: a named tuple's own __new__ is one more Python frame on every Check.
    return tuple.__new__(PlainCheck, (
        request.policy_set, request.min_version, request.tenant, subject.id, request.action,
        resource.kind, resource.id, request.request_id,
    ))


def check_response(
    outcome: CheckOutcome, explain: bool, policy_text: bool = True
) -> authorization_pb2.CheckResponse:
    """`policy_text`: whether the caller may read the deciding rule's text (else a reason code)."""
    response = authorization_pb2.CheckResponse(
        allowed=outcome.allowed,
        policy_version=outcome.policy_version,
        decision_id=outcome.decision_id,
        reason=outcome.reason if policy_text else reason_code(outcome.allowed, outcome.failure),
        denied_party=outcome.denied_party,
        failure=_FAILURE.get(outcome.failure, types_pb2.FAILURE_UNSPECIFIED),
    )
    if explain and policy_text:
        response.matched_rules.extend(_rules(outcome.matched))
    return response


def batch_input(request: authorization_pb2.BatchCheckRequest, caller: str = "") -> BatchInput:
    _bounded_request(request, "items", len(request.items))
    principal = _principal(request, caller)
    items = tuple(_batch_item(item) for item in request.items)
    return BatchInput(
        principal=principal,
        items=items,
        policy_set=request.policy_set,
        min_version=request.min_version,
        explain=request.explain,
        request_id=request.request_id,
    )


def batch_response(
    outcome: BatchOutcome, explain: bool, policy_text: bool = True
) -> authorization_pb2.BatchCheckResponse:
    response = authorization_pb2.BatchCheckResponse(policy_version=outcome.policy_version)
    add = response.results.add
    for result in outcome.results if policy_text else map(_coded, outcome.results):
        # Only the fields that can differ from their defaults: each keyword costs.
        if not explain and not result.error:
            if result.allowed:
                add(allowed=True, reason=result.reason, decision_id=result.decision_id)
            else:
                add(
                    reason=result.reason,
                    decision_id=result.decision_id,
                    denied_party=result.denied_party,
                    failure=_FAILURE.get(result.failure, types_pb2.FAILURE_UNSPECIFIED),
                )
            continue
        add(
            allowed=result.allowed,
            reason=result.reason,
            decision_id=result.decision_id,
            error=result.error,
            denied_party=result.denied_party,
            failure=_FAILURE.get(result.failure, types_pb2.FAILURE_UNSPECIFIED),
            matched_rules=_rules(result.matched) if explain else (),
        )
    return response


def filter_input(request: authorization_pb2.FilterAllowedRequest, caller: str = "") -> FilterInput:
    _bounded_request(request, "candidates", len(request.candidates))
    principal = _principal(request, caller)
    context = _struct(request.context, "context")
    action = request.action
    candidates = tuple(
        BatchItem(action, ResourceRef(resource.kind, resource.id))
        if not _carries(resource, "attributes")
        else _item(action, resource, None, "", prefix_resource=False)
        for resource in request.candidates
    )
    return FilterInput(
        principal=principal,
        action=request.action,
        candidates=candidates,
        context=context,
        policy_set=request.policy_set,
        min_version=request.min_version,
        explain=request.explain,
        request_id=request.request_id,
    )


def filter_response(
    outcome: FilterOutcome, request: authorization_pb2.FilterAllowedRequest, policy_text: bool = True
) -> authorization_pb2.FilterAllowedResponse:
    """The allowed candidates exactly as sent, and a Denial for each other one, in order."""
    candidates = request.candidates
    response = authorization_pb2.FilterAllowedResponse(
        policy_version=outcome.policy_version,
        allowed=[candidates[index] for index in outcome.allowed],
        allowed_indexes=outcome.allowed,
    )
    add = response.denied.add
    explain = request.explain
    denied = outcome.denied if policy_text else [(index, _coded(result)) for index, result in outcome.denied]
    for index, result in denied:
        if not explain and not result.error:  # only the fields that can differ from their defaults
            add(
                resource=candidates[index],
                reason=result.reason,
                index=index,
                denied_party=result.denied_party,
                failure=_FAILURE.get(result.failure, types_pb2.FAILURE_UNSPECIFIED),
            )
            continue
        add(
            resource=candidates[index],
            reason=result.reason,
            index=index,
            error=result.error,
            denied_party=result.denied_party,
            failure=_FAILURE.get(result.failure, types_pb2.FAILURE_UNSPECIFIED),
            matched_rules=_rules(result.matched) if explain else (),
        )
    return response


def list_input(request: authorization_pb2.ListAllowedRequest, caller: str = "") -> ListInput:
    _bounded_request(request, "", 0)
    principal = _principal(request, caller)
    return ListInput(
        principal=principal,
        action=request.action,
        kind=request.kind,
        context=_struct(request.context, "context"),
        policy_set=request.policy_set,
        min_version=request.min_version,
        request_id=request.request_id,
    )


def list_response(outcome: ListOutcome, policy_text: bool = True) -> authorization_pb2.ListAllowedResponse:
    """`policy_text`: whether the caller may read why the listing is partial (the reasons name
    rules, their lines and patterns); the others learn only that it is."""
    listing = outcome.listing
    reasons = listing.partial_reasons
    if reasons and not policy_text:
        reasons = (WITHHELD_PARTIAL_REASON,)
    return authorization_pb2.ListAllowedResponse(
        policy_version=outcome.policy_version,
        resource_ids=listing.resource_ids,
        patterns=listing.patterns,
        partial=listing.partial,
        partial_reasons=reasons,
    )


def _coded(result: ItemOutcome) -> ItemOutcome:
    """The outcome with its reason as a code and without its matched rules."""
    return result._replace(reason=reason_code(result.allowed, result.failure), matched=())


def _principal(request: _Principled, caller: str) -> Principal:
    if len(request.subject_token) > MAX_TOKEN_BYTES:
        raise InvalidRequestError("subject_token", f"is longer than {MAX_TOKEN_BYTES} bytes")
    _bounded("policy_set", request.policy_set)
    _bounded("request_id", request.request_id)
    actor = None
    if _carries_actor(request):
        actor = Party(request.actor.id, _struct(request.actor.attributes, "actor.attributes"))
    subject = Party(request.subject.id, _carried_struct(request.subject, "attributes", "subject.attributes"))
    return Principal(
        tenant=request.tenant,
        subject=subject,
        actor=actor,
        subject_token=request.subject_token,
        caller=caller,
    )


def _carries(owner: Any, name: str) -> bool:
    """Whether `owner` carries a non-empty Struct `name` (an empty one reads as absent).
    HasField first: much cheaper than reading an absent Struct's fields."""
    return owner.HasField(name) and bool(getattr(owner, name).fields)


def _carries_actor(request: _Principled) -> bool:
    """Whether the request names an actor: an empty actor reads as none."""
    return request.HasField("actor") and bool(request.actor.id or request.actor.attributes.fields)


def _batch_item(item: authorization_pb2.BatchCheckItem) -> BatchItem:
    resource, request_id = item.resource, item.request_id
    if (
        not _carries(resource, "attributes")
        and not _carries(item, "context")
        and len(request_id) <= limits.MAX_ID_LENGTH
    ):
        return BatchItem(item.action, ResourceRef(resource.kind, resource.id), NO_ATTRIBUTES, request_id)
    return _item(item.action, resource, item.context, request_id)


def _item(
    action: str,
    resource: types_pb2.Resource,
    context: struct_pb2.Struct | None,
    request_id: str,
    *,
    prefix_resource: bool = True,
) -> BatchItem:
    """One batch item or filter candidate; a conversion error becomes the item's own error
    (its field named relative to the item: the service adds the item's position)."""
    attributes = resource.attributes
    resource_field = "resource.attributes" if prefix_resource else "attributes"
    try:
        converted = _struct(attributes, resource_field)
        item_context = _struct(context, "context") if context is not None else NO_ATTRIBUTES
        _bounded("request_id", request_id)
    except InvalidRequestError as exc:
        return BatchItem(action, ResourceRef(resource.kind, resource.id), invalid=exc)
    return BatchItem(action, ResourceRef(resource.kind, resource.id, converted), item_context, request_id)


def _rules(matched: Iterable[MatchedRule]) -> list[types_pb2.MatchedRule]:
    return [
        types_pb2.MatchedRule(
            text=rule.text,
            ptype=rule.ptype,
            values=list(rule.values),
            file=POLICY_FILE,
            line=rule.line or 0,
        )
        for rule in matched
    ]


def _carried_struct(owner: Any, name: str, field: str) -> Mapping[str, Any]:
    """`owner.<name>` (a Struct) as plain Python, or NO_ATTRIBUTES when the request does not
    carry it: asking HasField is much cheaper than reading an absent Struct's fields."""
    if not owner.HasField(name):
        return NO_ATTRIBUTES
    return _struct(getattr(owner, name), field)


def _struct(message: struct_pb2.Struct, field: str) -> dict[str, Any]:
    if not message.fields:
        return {}
    if message.ByteSize() > limits.MAX_STRUCT_BYTES:
        raise InvalidRequestError(field, f"is larger than {limits.MAX_STRUCT_BYTES} bytes")
    return {key: _value(value, f"{field}.{key}") for key, value in message.fields.items()}


def _value(value: struct_pb2.Value, field: str) -> Any:
    """A Struct value as plain Python; NaN and infinities are refused here, naming the field
    (json_format would fail on them with an unhelpful error)."""
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        if not math.isfinite(value.number_value):
            raise InvalidRequestError(field, "is not a finite number")
        return value.number_value
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return {k: _value(v, f"{field}.{k}") for k, v in value.struct_value.fields.items()}
    if kind == "list_value":
        return [_value(v, f"{field}[{i}]") for i, v in enumerate(value.list_value.values)]
    return None


def _bounded(field: str, value: str) -> None:
    if len(value) > limits.MAX_ID_LENGTH:
        raise InvalidRequestError(field, f"is longer than {limits.MAX_ID_LENGTH} characters")


def _bounded_request(request: Any, field: str, count: int) -> None:
    if count > limits.MAX_BATCH_ITEMS:
        raise InvalidRequestError(field, f"has {count} entries, more than {limits.MAX_BATCH_ITEMS}")
    size = request.ByteSize()
    if size > limits.MAX_BATCH_REQUEST_BYTES:
        raise InvalidRequestError(
            "request", f"is {size} bytes, larger than {limits.MAX_BATCH_REQUEST_BYTES}"
        )
