"""Request-scoped values set by the interceptors and read by servicers."""

from __future__ import annotations

from contextvars import ContextVar

from policy_engine.auth.principal import ANONYMOUS, Principal

__all__ = ["current_principal"]

current_principal: ContextVar[Principal] = ContextVar("current_principal", default=ANONYMOUS)
