"""The configuration file: rate limits and the decision log as written, and bad values refused naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from policy_engine.config import AuditSettings, ConfigError, RateLimitSettings, RateSettings, load_config, load_security


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_rate_limits_as_written_and_defaults_for_the_rest(tmp_path: Path) -> None:
    settings = load_security(write(tmp_path, (
        "rate_limits:\n"
        "  caller: {rate: 10, burst: 20}\n"
        "  decisions: {rate: 500}\n"
        "  rpcs: {PushVersion: {rate: 1, burst: 5}}\n"
    )))
    limits = settings.rate_limits
    assert limits.caller == RateSettings(10, 20)
    assert limits.decisions == RateSettings(500, RateLimitSettings().decisions.burst)
    assert limits.subject == RateLimitSettings().subject
    assert limits.rpcs == {"PushVersion": RateSettings(1, 5)}


@pytest.mark.parametrize(("text", "message"), [
    ("rate_limits:\n  decisions: {rate: 0}\n", "rate_limits.decisions.rate: must be more than 0"),
    ("rate_limits:\n  caller: {rate: -5, burst: 10}\n", "rate_limits.caller.rate: must be more than 0"),
    ("rate_limits:\n  subject: {rate: 5, burst: 0.5}\n", "rate_limits.subject.burst: must be at least 1"),
    ("rate_limits:\n  decisions: {rate: fast}\n", "rate_limits.decisions.rate: must be float"),
])
def test_bad_rate_limits_are_refused_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_security(write(tmp_path, text))


def test_decision_log_queue_and_wait_as_written_and_by_default(tmp_path: Path) -> None:
    audit = load_config(write(tmp_path, (
        "audit:\n  queue_size: 5000\n  max_wait_seconds: 0.5\n  writer_priority: idle\n"
    ))).audit
    assert (audit.queue_size, audit.max_wait_seconds, audit.writer_priority) == (5000, 0.5, "idle")
    default = load_config(write(tmp_path, "audit:\n  enabled: true\n")).audit
    assert (default.queue_size, default.max_wait_seconds, default.writer_priority) == (
        AuditSettings().queue_size, 2.0, "normal"
    )


@pytest.mark.parametrize(("text", "message"), [
    ("audit:\n  queue_size: 999\n", "audit.queue_size: must be at least 1000"),
    ("audit:\n  max_wait_seconds: -1\n", "audit.max_wait_seconds: must be between 0 and 60"),
    ("audit:\n  max_wait_seconds: soon\n", "audit.max_wait_seconds: must be float"),
    ("audit:\n  writer_priority: high\n", "audit.writer_priority: must be one of"),
])
def test_bad_decision_log_settings_are_refused_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))
