"""Credentials are dropped from attributes before they are stored."""

from __future__ import annotations

from policy_engine.audit import redact


def test_credential_keys_are_dropped_at_any_depth() -> None:
    """authorization, token-like and cookie keys disappear, case-insensitively, nested too."""
    value = {"Authorization": "x", "headers": {"cookie": "c", "x-api-key": "k", "accept": "json"},
             "access_token": "t", "keep": 1}
    assert redact(value) == {"headers": {"accept": "json"}, "keep": 1}


def test_token_shaped_values_are_replaced() -> None:
    """Bearer/Basic credentials and JWT-shaped strings become [redacted]; ordinary strings stay."""
    value = {"a": "Bearer abc", "b": "basic dXNlcjpwdw==", "c": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig",
             "d": ["eyJx.eyJy.z", "plain"], "e": "eyes only", "f": 3}
    assert redact(value) == {"a": "[redacted]", "b": "[redacted]", "c": "[redacted]",
                             "d": ["[redacted]", "plain"], "e": "eyes only", "f": 3}
