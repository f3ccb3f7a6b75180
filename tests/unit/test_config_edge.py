"""Configuration of identities, shared counters and threat scope: as written, defaults, bad values named."""

from __future__ import annotations

from pathlib import Path

import pytest

from policy_engine.config import ConfigError, RedisSettings, load_config, load_security



def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "jwks.json").write_text('{"keys": []}')
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


TOKENS = "auth:\n  callers: {issuer: i, audience: a, jwks_file: jwks.json%s}\n"


def test_token_lifetime_as_written_and_by_default(tmp_path: Path) -> None:
    """max_lifetime_seconds is read per token source; 24 h when not written."""
    written = load_security(write(tmp_path, TOKENS % ", max_lifetime_seconds: 3600"))
    assert written.callers.tokens.max_lifetime_seconds == 3600  # type: ignore[union-attr]
    default = load_security(write(tmp_path, TOKENS % ""))
    assert default.callers.tokens.max_lifetime_seconds == 86400  # type: ignore[union-attr]


def test_redis_and_client_identity_as_written(tmp_path: Path) -> None:
    """The redis section and tls.client_identity are read; no redis section means per-process counters."""
    settings = load_security(write(tmp_path, (
        "redis: {url: 'redis://10.0.0.5:6379/2', key_prefix: 'acme:', timeout_seconds: 0.1}\n"
        "tls: {cert_file: c.pem, key_file: k.pem, client_identity: dns_san}\n"
    )))
    assert settings.redis == RedisSettings("redis://10.0.0.5:6379/2", "acme:", 0.1, 5.0)
    assert settings.tls is not None and settings.tls.client_identity == "dns_san"
    assert load_security(write(tmp_path, "tls: {cert_file: c.pem, key_file: k.pem}\n")).tls.client_identity == "uri_san"  # type: ignore[union-attr]
    assert load_security(write(tmp_path, "rate_limits: {}\n")).redis is None


def test_actor_subjects_as_written_and_by_default(tmp_path: Path) -> None:
    """threats.*.actor_subjects is read (default 3)."""
    threats = load_config(write(tmp_path, (
        "threats:\n  default: {denials: 5}\n  tenants: {acme: {denials: 2, actor_subjects: 5}}\n"
    ))).threats
    assert threats.default[0] == 5 and threats.default[3] == 3
    assert threats.tenants["acme"][3] == 5


@pytest.mark.parametrize(("text", "message"), [
    (TOKENS % ", max_lifetime_seconds: 0", r"auth.callers.max_lifetime_seconds: must be more than 0"),
    (TOKENS % ", max_lifetime_seconds: forever", r"auth.callers.max_lifetime_seconds: must be int"),
    ("redis: {key_prefix: x}\n", r"redis.url: is required"),
    ("redis: {url: 'http://127.0.0.1:6379'}\n", r"redis.url: must be a redis://"),
    ("redis: {url: 'redis://x', timeout_seconds: 0}\n", r"redis.timeout_seconds: must be more than 0"),
    ("redis: {url: 'redis://x', retry_seconds: -1}\n", r"redis.retry_seconds: must be more than 0"),
    ("tls: {cert_file: c, key_file: k, client_identity: cn}\n", r"tls.client_identity: must be one of"),
])
def test_bad_edge_settings_are_refused_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    """Each bad value is a ConfigError naming its key path."""
    with pytest.raises(ConfigError, match=message):
        load_security(write(tmp_path, text))


def test_bad_actor_subjects_is_refused(tmp_path: Path) -> None:
    """actor_subjects below 1 could never (or always) quarantine an agent: refused."""
    with pytest.raises(ConfigError, match="threats.default.actor_subjects: must be at least 1"):
        load_config(write(tmp_path, "threats:\n  default: {denials: 5, actor_subjects: 0}\n"))
