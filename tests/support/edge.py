"""Edge settings shared by tests."""

from __future__ import annotations

from policy_engine.config import EdgeSettings, LocalAdminSettings

# An operator who lets local, unauthenticated callers read explanations and rule text (by
# default they hold authz:check only): for tests about what an explanation says, not who sees it.
EXPLAINING_LOCAL_CALLERS = EdgeSettings(
    local_admin=LocalAdminSettings(anonymous_scopes=frozenset({"authz:check", "authz:explain"}))
)
