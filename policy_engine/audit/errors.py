"""Errors of the audit package (all derive from PolicyEngineError)::

    PolicyEngineError
    └── AuditError                      the audit trail refused or failed something
        ├── AuditUnavailableError       fail-closed policy: this decision's entry cannot be kept
        ├── AttributeKeyError           no key with this id (reveal/protect), or bad key material
        └── AttributeDecryptionError    the ciphertext does not open with its key (edited, wrong key)
"""

from __future__ import annotations

from policy_engine.errors import PolicyEngineError

__all__ = ["AttributeDecryptionError", "AttributeKeyError", "AuditError", "AuditUnavailableError"]


class AuditError(PolicyEngineError):
    """The audit trail refused or failed an operation."""


class AuditUnavailableError(AuditError):
    """Under the fail-closed policy: the entry cannot be queued or kept, so do not decide."""


class AttributeKeyError(AuditError):
    """The key needed to protect or reveal attributes is not configured, or is malformed."""


class AttributeDecryptionError(AuditError):
    """The attributes ciphertext does not open with its key: edited, or a different key."""
