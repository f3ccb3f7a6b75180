"""Overload settings as written and refused naming the key; the SDK reading the server's retry hint."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from policy_engine.client._core import call_metadata, retry_after
from policy_engine.config import AdmissionSettings, ConfigError, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_admission_as_written_and_defaults_for_the_rest(tmp_path: Path) -> None:
    """Keys given in `admission:` are taken; the others keep their defaults; no section means defaults."""
    admission = load_config(write(tmp_path, "admission:\n  queue_budget_ms: 5\n  retry_after_ms: 100\n")).admission
    assert admission == AdmissionSettings(queue_budget_ms=5.0, retry_after_ms=100.0)
    assert load_config(write(tmp_path, "metrics: {}\n")).admission == AdmissionSettings()
    assert load_config(write(tmp_path, "admission:\n  enabled: false\n")).admission.enabled is False


@pytest.mark.parametrize(("text", "message"), [
    ("admission:\n  queue_budget_ms: 0\n", "admission.queue_budget_ms: must be more than 0"),
    ("admission:\n  max_in_flight_decisions: -3\n", "admission.max_in_flight_decisions: must be more than 0"),
    ("admission:\n  max_in_flight_decisions: 1.5\n", "admission.max_in_flight_decisions: must be int"),
    ("admission:\n  retry_after_ms: soon\n", "admission.retry_after_ms: must be float"),
    ("admission:\n  enabled: maybe\n", "admission.enabled: must be bool"),
])
def test_bad_admission_settings_are_refused_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    """A bad admission value stops the start with the key that is wrong."""
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))


class _Failed(grpc.RpcError):
    def __init__(self, trailing: tuple[tuple[str, str], ...]) -> None:
        self._trailing = trailing

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._trailing


def test_retry_hint_is_read_in_seconds_and_garbage_ignored() -> None:
    """`retry-after-ms: 250` is a 0.25 s hint; a missing or malformed hint is no hint."""
    assert retry_after(_Failed((("retry-after-ms", "250"),))) == 0.25
    assert retry_after(_Failed((("other", "1"),))) is None
    assert retry_after(_Failed((("retry-after-ms", "soon"),))) is None


def test_each_attempt_carries_its_timeout() -> None:
    """The SDK sends the attempt's timeout in ms beside the token, or alone without one."""
    assert call_metadata("t", 1.5) == (("authorization", "Bearer t"), ("x-timeout-ms", "1500"))
    assert call_metadata(None, 0.25) == (("x-timeout-ms", "250"),)
    assert call_metadata(None) is None
