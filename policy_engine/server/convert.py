"""Pure functions between protobuf messages and the core's types. No I/O, no decisions."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format, struct_pb2

from policy_engine import limits
from policy_engine.actions import Action, Party, ResourceRef
from policy_engine.bundle.loader import POLICY_FILE
from policy_engine.errors import InvalidRequestError, UnsupportedError
from policy_engine.service import CheckInput, CheckOutcome
from policy_engine.v1 import authorization_pb2, types_pb2

__all__ = ["check_input", "check_response"]


def check_input(request: authorization_pb2.CheckRequest) -> CheckInput:
    if request.subject_token:
        raise UnsupportedError("subject_token: verified end-user tokens are not supported yet")
    actor = None
    if request.HasField("actor") and (request.actor.id or request.actor.attributes.fields):
        actor = Party(request.actor.id, _struct(request.actor.attributes, "actor.attributes"))
    action = Action(
        tenant=request.tenant,
        subject=Party(request.subject.id, _struct(request.subject.attributes, "subject.attributes")),
        action=request.action,
        resource=ResourceRef(
            kind=request.resource.kind,
            id=request.resource.id,
            attributes=_struct(request.resource.attributes, "resource.attributes"),
        ),
        actor=actor,
        context=_struct(request.context, "context"),
    )
    _bounded("policy_set", request.policy_set)
    _bounded("request_id", request.request_id)
    return CheckInput(
        action=action,
        policy_set=request.policy_set,
        min_version=request.min_version,
        explain=request.explain,
        request_id=request.request_id,
    )


def check_response(outcome: CheckOutcome, explain: bool) -> authorization_pb2.CheckResponse:
    response = authorization_pb2.CheckResponse(
        allowed=outcome.allowed,
        policy_version=outcome.policy_version,
        decision_id=outcome.decision_id,
        reason=outcome.reason,
        denied_party=outcome.denied_party,
    )
    if explain:
        response.matched_rules.extend(
            types_pb2.MatchedRule(
                text=rule.text,
                ptype=rule.ptype,
                values=list(rule.values),
                file=POLICY_FILE,
                line=rule.line or 0,
            )
            for rule in outcome.matched
        )
    return response


def _struct(message: struct_pb2.Struct, field: str) -> dict[str, Any]:
    if message.ByteSize() > limits.MAX_STRUCT_BYTES:
        raise InvalidRequestError(field, f"is larger than {limits.MAX_STRUCT_BYTES} bytes")
    return json_format.MessageToDict(message)


def _bounded(field: str, value: str) -> None:
    if len(value) > limits.MAX_ID_LENGTH:
        raise InvalidRequestError(field, f"is longer than {limits.MAX_ID_LENGTH} characters")
