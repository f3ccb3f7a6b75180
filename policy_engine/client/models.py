"""Typed results and inputs of the SDK: frozen dataclasses, never protobuf messages."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BatchResult",
    "CheckItem",
    "CheckResult",
    "Denial",
    "FilterResult",
    "Identity",
    "ListResult",
    "MatchedRuleInfo",
    "Resource",
]


@dataclass(frozen=True)
class Resource:
    """A tool, data scope, model or memory: rules see it as "<kind>:<id>"."""

    kind: str
    id: str
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: str | Resource, attributes: Mapping[str, Any] | None = None) -> Resource:
        """ "tool:web_search" -> Resource("tool", "web_search"); a bare id has no kind."""
        if isinstance(value, Resource):
            return value
        if not isinstance(value, str):
            raise TypeError(f"a resource is a Resource or a 'kind:id' string, not {type(value).__name__} {value!r}")
        kind, sep, resource_id = value.partition(":")
        if not sep:
            kind, resource_id = "", value
        return cls(kind, resource_id, dict(attributes or {}))

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.id}" if self.kind else self.id


@dataclass(frozen=True)
class MatchedRuleInfo:
    """A deciding rule as written, and where it is in the bundle of the deciding version."""

    text: str
    file: str
    line: int
    ptype: str = "p"
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckResult:
    """One decision. `failure` (when denied): no_role, no_matching_rule, deny_rule, condition,
    actor, evaluation_error, or invalid (then `error` says why and nothing was decided)."""

    allowed: bool
    policy_version: int
    decision_id: str
    reason: str
    denied_party: str
    matched_rules: tuple[MatchedRuleInfo, ...]
    failure: str = ""
    error: str = ""

    def __bool__(self) -> bool:
        return self.allowed


@dataclass(frozen=True)
class CheckItem:
    """One action of a batch: the subject, actor and tenant are the batch's."""

    action: str
    resource: Resource | str
    context: Mapping[str, Any] | None = None
    request_id: str = ""


@dataclass(frozen=True)
class BatchResult:
    """Every item's decision, in order, all made by `policy_version`."""

    policy_version: int
    results: tuple[CheckResult, ...]

    def __iter__(self) -> Iterator[CheckResult]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, index: int) -> CheckResult:
        return self.results[index]

    @property
    def all_allowed(self) -> bool:
        return all(result.allowed for result in self.results)


@dataclass(frozen=True)
class Denial:
    """A candidate that was not allowed; `index` is its position among the candidates."""

    resource: Resource
    reason: str
    index: int
    error: str = ""
    denied_party: str = ""
    failure: str = ""
    matched_rules: tuple[MatchedRuleInfo, ...] = ()


@dataclass(frozen=True)
class FilterResult:
    """The allowed candidates and the denied ones, each in request order."""

    policy_version: int
    allowed: tuple[Resource, ...]
    denied: tuple[Denial, ...]
    allowed_indexes: tuple[int, ...]


@dataclass(frozen=True)
class ListResult:
    """What ListAllowed found for one kind: concrete ids, prefix patterns, and whether it is partial.

    A pattern "data:public/*" means: every resource whose "<kind>:<id>" starts
    with "data:public/" is allowed. `partial` means more may be allowed than
    listed (see `partial_reasons`); nothing listed is ever denied by Check for
    the same subject, actor, attributes and context.
    """

    policy_version: int
    kind: str
    resource_ids: tuple[str, ...]
    patterns: tuple[str, ...]
    partial: bool
    partial_reasons: tuple[str, ...] = ()

    @property
    def prefixes(self) -> tuple[str, ...]:
        """The patterns as key prefixes ("data:public/"), for a vector-store filter."""
        return tuple(pattern[:-1] for pattern in self.patterns)

    def covers(self, resource: Resource | str) -> bool:
        """True when this listing says Check allows `resource` (an id of this kind or "kind:id")."""
        if isinstance(resource, str) and not resource.startswith(f"{self.kind}:"):
            resource = Resource(self.kind, resource)
        parsed = Resource.parse(resource)
        if parsed.kind != self.kind:
            return False
        return parsed.id in self.resource_ids or any(
            parsed.key.startswith(prefix) for prefix in self.prefixes
        )


@dataclass(frozen=True)
class Identity:
    """Who acts, where: the tenant, the end user (subject) and the agent acting for them (actor).

    `context` is sent with every call made for this identity (merged under a call's own).
    """

    tenant: str
    subject: str
    subject_attributes: Mapping[str, Any] | None = None
    actor: str | None = None
    actor_attributes: Mapping[str, Any] | None = None
    policy_set: str = ""
    context: Mapping[str, Any] | None = None

    def as_kwargs(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "subject": self.subject,
            "subject_attributes": self.subject_attributes,
            "actor": self.actor,
            "actor_attributes": self.actor_attributes,
            "policy_set": self.policy_set,
            "context": self.context,
        }
