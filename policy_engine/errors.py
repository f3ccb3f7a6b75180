"""Exceptions of policy-engine, factored out to avoid import loops.

The tree, so callers can catch at the level they care about::

    PolicyEngineError
    ├── EngineError                 the decision core refused something
    │   ├── ModelError              model.conf does not parse or is incomplete
    │   ├── PolicyLoadError         a rule line is malformed (carries the line number)
    │   ├── RequestError            a request does not fit the model (e.g. wrong number of values)
    │   └── EvaluationError         the matcher failed on a request (missing attribute, type error)
    ├── BundleError                 a policy folder on disk is unusable (carries file:line problems)
    ├── InvalidRequestError         a request failed validation (names the field)
    ├── NotFoundError               an unknown policy set or version
    ├── StoreError                  the database refused or failed
    │   ├── SchemaOutdatedError     the schema is older than the code
    │   └── StoreUnavailableError   the database cannot be reached
    ├── NoActiveVersionError        a policy set has no (recent enough) version loaded
    ├── NotReadyError               this replica has never loaded any policy version
    ├── PreconditionFailedError     the stored state is not what the request expects
    │   ├── StaleActivationError    the active version is not the expected one
    │   └── NothingToRollBackError  there is no previously active version
    ├── UnsupportedError            a request uses a feature this server does not offer
    ├── DeadlineExceededError       the request's deadline passed before it was decided
    ├── UnauthenticatedError        missing or bad credentials (the reason leaks no key material)
    ├── PermissionDeniedError       valid credentials, not allowed to call this
    └── RateLimitedError            too many requests; `retry_after` says when to come back
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "BundleError",
    "DeadlineExceededError",
    "EngineError",
    "EvaluationError",
    "InvalidRequestError",
    "ModelError",
    "NoActiveVersionError",
    "NotFoundError",
    "NotReadyError",
    "NothingToRollBackError",
    "PreconditionFailedError",
    "StaleActivationError",
    "PolicyEngineError",
    "PolicyLoadError",
    "Problem",
    "RequestError",
    "SchemaOutdatedError",
    "PermissionDeniedError",
    "RateLimitedError",
    "UnauthenticatedError",
    "UnsupportedError",
    "StoreError",
    "StoreUnavailableError",
]


class PolicyEngineError(Exception):
    """Base of every error raised on purpose by policy-engine."""


class EngineError(PolicyEngineError):
    """The decision core refused a model, a rule or a request."""


class ModelError(EngineError):
    """A model definition does not parse or lacks a required section."""


class PolicyLoadError(EngineError):
    """A rule cannot be loaded; `line` is its 1-based line in the policy text when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message if line is None else f"line {line}: {message}")
        self.line = line


class RequestError(EngineError):
    """A request does not fit the model, e.g. the wrong number of values."""


class EvaluationError(EngineError):
    """The matcher raised while evaluating a request; callers treat this as a denial."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a bundle, located in a file (and line when known)."""

    file: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.message}"


class BundleError(PolicyEngineError):
    """A policy folder cannot be used; `problems` lists every reason with file and line."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


class InvalidRequestError(PolicyEngineError):
    """A request failed validation; `field` names the offending field (dotted path)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotFoundError(PolicyEngineError):
    """An unknown policy set or version."""


class StoreError(PolicyEngineError):
    """The database refused or failed an operation."""


class SchemaOutdatedError(StoreError):
    """The database schema is older than this code; the message says which command to run."""


class StoreUnavailableError(StoreError):
    """The database cannot be reached."""


class NoActiveVersionError(PolicyEngineError):
    """A policy set has no active version loaded in this process."""


class UnsupportedError(PolicyEngineError):
    """A request uses a feature this server does not offer (yet)."""


class NotReadyError(PolicyEngineError):
    """This replica has never loaded a policy version, so it cannot decide anything yet."""


class PreconditionFailedError(PolicyEngineError):
    """The stored state is not what the request expects; nothing was changed."""


class StaleActivationError(PreconditionFailedError):
    """The active version is not the one the caller expected."""


class NothingToRollBackError(PreconditionFailedError):
    """There is no previously active version to go back to."""


class DeadlineExceededError(PolicyEngineError):
    """The request's deadline passed before it was decided: it is not decided, nor logged."""


class UnauthenticatedError(PolicyEngineError):
    """Missing or bad credentials; the message is safe to show the caller."""


class PermissionDeniedError(PolicyEngineError):
    """The caller is authenticated but not allowed to do this."""


class RateLimitedError(PolicyEngineError):
    """Too many requests from one caller or for one subject."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after
