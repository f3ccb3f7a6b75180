"""The canonical sha256 of a bundle: the same content always gives the same digest."""

from __future__ import annotations

import hashlib
import json

from policy_engine.bundle.loader import MODEL_FILE, POLICY_FILE, Bundle
from policy_engine.bundle.roles import ROLES_FILE
from policy_engine.bundle.schema import SCHEMA_FILE

__all__ = ["bundle_digest"]


def bundle_digest(bundle: Bundle) -> str:
    """sha256 over every file of the bundle, by name, in sorted order (the set name excluded)."""
    files = {MODEL_FILE: bundle.model_text, POLICY_FILE: bundle.policy_text, **bundle.tests}
    if bundle.schema_text:  # absent and empty are the same bundle
        files[SCHEMA_FILE] = bundle.schema_text
    if bundle.roles_text:
        files[ROLES_FILE] = bundle.roles_text
    canonical = json.dumps(sorted(files.items()), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
