"""One typed settings object for the server, from flags, environment variables and a YAML file.

The YAML file (`--config FILE`) holds what does not fit on a command line:
authentication, TLS and rate limits. Its shape, every key optional:

    auth:
      callers:                       # who may call the service (OAuth2/OIDC JWTs)
        issuer: https://idp.example.com/
        audience: policy-engine
        jwks_file: /etc/policy-engine/jwks.json    # or jwks_url: https://idp.example.com/jwks
        algorithms: [RS256, ES256]                 # default: asymmetric only
        hmac_secret_file: null                     # HS* only when set
        leeway_seconds: 30
        max_lifetime_seconds: 86400                # longest exp - iat (or exp - now) accepted
        roles_claim: roles
        role_scopes: {platform-admin: [policy:read, policy:write, policy:activate]}
        principals: {"spiffe://acme/backend": [authz:check]}   # token subs or mTLS identities
      subjects:                      # end-user tokens passed through in subject_token
        issuer: https://idp.example.com/
        audience: llm-backend
        jwks_file: /etc/policy-engine/jwks.json
        attributes: {roles: roles, clearance: clearance, mfa: {claim: amr, contains: mfa}}
        tenant_claim: tenant
        verified_tenants: [acme]     # these tenants refuse a bare subject.id
    tls:
      cert_file: server.pem          # reloaded when the files change
      key_file: server.key
      client_ca_file: ca.pem         # mTLS: client certificates signed by this CA
      require_client_cert: true
      client_identity: uri_san       # the caller is the cert's one URI SAN; or dns_san, common_name
    rate_limits:
      caller: {rate: 2000, burst: 4000}     # per caller identity, requests/second
      decisions: {rate: 100000, burst: 200000}  # per caller, decisions/second (a batch item is one)
      subject: {rate: 200, burst: 400}      # per end user
      rpcs: {PushVersion: {rate: 1, burst: 5}}
      max_concurrent_rpcs: 1000
      max_per_connection: 200
    audit:
      enabled: true
      replica_id: replica-a          # stable per replica: its spill file and hash chain
      spill_dir: var/audit           # default: var/audit beside the working directory
      keys_file: audit-keys.json     # AES-GCM keys; else POLICY_ENGINE_AUDIT_KEYS; else generated
      hashed: [subject.email, context.ip]
      retention_days: 90
      on_loss: count                 # or fail_closed
      queue_size: 10000              # entries waiting for the writer (at least a batch: 1000)
      max_wait_seconds: 2.0          # a request waits this long for queue room before on_loss applies
      writer: process                # or thread (in the serving process)
      writer_priority: normal        # or idle: Linux SCHED_IDLE, one worker on a host of its own
    threats:                         # denials per (subject, actor) pair; actor-wide only from several subjects
      default: {denials: 20, window_seconds: 60, quarantine_seconds: 900, actor_subjects: 3}
      tenants: {acme: {denials: 10, window_seconds: 30, quarantine_seconds: 3600}}
    redis:                           # share rate-limit and denial counters between replicas
      url: redis://127.0.0.1:6379/0
      key_prefix: "policy-engine:"   # one per deployment sharing a Redis
      timeout_seconds: 0.25          # beyond it (or when down), counters hold per process
      retry_seconds: 5
    metrics:
      listen: 127.0.0.1:9464         # Prometheus endpoint; off unless set
    edge:                            # connections, and the credential of the default start
      connections:
        max: 0                       # open connections at once; 0: from the open-file limit
        idle_timeout_seconds: 120    # a connection with no call for this long is closed (GOAWAY)
        max_age_seconds: 3600        # every connection is closed after this long (+/- 10%) ...
        max_age_grace_seconds: 30    # ... once its calls end, or after this grace
        handshake_timeout_seconds: 10  # to finish TLS and the HTTP/2 preface
        max_streams: 256             # streams at once on one connection (HTTP/2 MAX_CONCURRENT_STREAMS)
        calls: {rate: 2000, burst: 4000}   # calls started per connection per second (cancelled ones count)
      keepalive:
        min_ping_interval_seconds: 60  # a client pinging more often without calls gets a strike ...
        max_ping_strikes: 2          # ... and the connection is closed after this many
        permit_without_calls: false  # whether pings with no call in flight are acceptable at all
        time_seconds: 300            # the server pings a quiet connection to find dead peers
        timeout_seconds: 20
      local_admin:                   # only when auth.callers / mTLS are not configured
        token_file: null             # default: $XDG_STATE_HOME/policy-engine/admin-token
        anonymous_scopes: [authz:check]
    admission:                       # overload: refuse at once (RESOURCE_EXHAUSTED) what cannot be served soon
      enabled: true
      queue_budget_ms: 20            # refuse a decision RPC that waited longer than this to start
      max_in_flight_decisions: 20000 # decisions in handlers at once (a batch item is one)
      retry_after_ms: 20             # the retry-after-ms hint, scaled by how far over budget
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from policy_engine.limits import MAX_BATCH_ITEMS

__all__ = [
    "DEFAULT_DB",
    "DEFAULT_LISTEN",
    "AdmissionSettings",
    "AuditSettings",
    "ConnectionSettings",
    "EdgeSettings",
    "KeepaliveSettings",
    "LocalAdminSettings",
    "CallerAuthSettings",
    "ConfigError",
    "FileConfig",
    "ThreatSettings",
    "load_config",
    "RateSettings",
    "RateLimitSettings",
    "RedisSettings",
    "SecuritySettings",
    "Settings",
    "SubjectAuthSettings",
    "TlsSettings",
    "TokenSettings",
    "is_loopback",
    "load_security",
    "split_host_port",
]

DEFAULT_LISTEN = "127.0.0.1:50051"
DEFAULT_DB = "sqlite:///policy-engine.db"
ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


class ConfigError(ValueError):
    """The configuration file is invalid; the message names the key."""


@dataclass(frozen=True)
class TokenSettings:
    issuer: str
    audience: str
    jwks_file: Path | None = None
    jwks_url: str | None = None
    hmac_secret_file: Path | None = None
    algorithms: tuple[str, ...] = ASYMMETRIC
    leeway_seconds: int = 30
    # The longest validity a token may claim (exp - iat; without iat, exp - now).
    max_lifetime_seconds: int = 24 * 3600
    refresh_interval_seconds: float = 60.0
    fetch_timeout_seconds: float = 2.0


@dataclass(frozen=True)
class CallerAuthSettings:
    tokens: TokenSettings | None = None
    roles_claim: str = "roles"
    role_scopes: Mapping[str, frozenset[str]] = field(default_factory=dict)
    principals: Mapping[str, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class SubjectAuthSettings:
    tokens: TokenSettings | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    tenant_claim: str | None = "tenant"
    verified_tenants: frozenset[str] = frozenset()


@dataclass(frozen=True)
class TlsSettings:
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
    require_client_cert: bool = False
    # Where an mTLS caller's identity is read: "uri_san" (SPIFFE), "dns_san" or "common_name".
    client_identity: str = "uri_san"


@dataclass(frozen=True)
class RateSettings:
    rate: float
    burst: float


@dataclass(frozen=True)
class RateLimitSettings:
    caller: RateSettings = RateSettings(2000, 4000)
    # Decisions per caller: a BatchCheck or FilterAllowed costs one per item, so the request
    # limit above cannot be multiplied by the batch size.
    decisions: RateSettings = RateSettings(100_000, 200_000)
    subject: RateSettings = RateSettings(500, 1000)
    rpcs: Mapping[str, RateSettings] = field(default_factory=dict)
    max_concurrent_rpcs: int = 1000
    max_per_connection: int = 200


@dataclass(frozen=True)
class RedisSettings:
    """Where rate-limit buckets and denial windows are shared (service/counters.py)."""

    url: str
    key_prefix: str = "policy-engine:"
    timeout_seconds: float = 0.25
    retry_seconds: float = 5.0


@dataclass(frozen=True)
class SecuritySettings:
    callers: CallerAuthSettings | None = None
    subjects: SubjectAuthSettings | None = None
    tls: TlsSettings | None = None
    rate_limits: RateLimitSettings = RateLimitSettings()
    # Shared counters for rate limits and threat signals; per process when None.
    redis: RedisSettings | None = None

    @property
    def authenticates_callers(self) -> bool:
        """True when every caller must prove who it is (tokens or required client certificates)."""
        token_auth = self.callers is not None and self.callers.tokens is not None
        mtls = self.tls is not None and self.tls.require_client_cert
        return token_auth or mtls


@dataclass(frozen=True)
class AuditSettings:
    enabled: bool = True
    replica_id: str | None = None
    spill_dir: Path = Path("var/audit")
    keys_file: Path | None = None
    hashed: tuple[str, ...] = ()
    retention_days: int | None = None
    on_loss: str = "count"
    queue_size: int = 10_000
    # When the queue is full, a request waits (up to this, and its deadline) for the writer to
    # make room before it is decided; only then does `on_loss` apply.
    max_wait_seconds: float = 2.0
    # "process": the writer runs in a child process, off the serving process's GIL;
    # "thread": in the serving process (lighter to start, e.g. for tests).
    writer: str = "process"
    # "normal"; or "idle": the writer process only takes CPU time nothing else wants (a lower
    # tail latency for one worker on a host of its own; it can starve otherwise).
    writer_priority: str = "normal"


@dataclass(frozen=True)
class ThreatSettings:
    """Per tenant: (denials, window_seconds, quarantine_seconds[, actor_subjects]); `default` for
    the others. `actor_subjects` (default 3): how many distinct subjects' denials it takes to
    quarantine an actor for every user; below it only the (subject, actor) pair is quarantined."""

    default: tuple[float, ...] = (0, 60.0, 0.0, 3)
    tenants: Mapping[str, tuple[float, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class ConnectionSettings:
    """Bounds on the server's connections; the gRPC core channel arguments they become are
    in server/connections.py."""

    max: int = 0  # 0: derived from the open-file limit at start
    idle_timeout_seconds: float = 120.0
    max_age_seconds: float = 3600.0
    max_age_grace_seconds: float = 30.0
    handshake_timeout_seconds: float = 10.0
    max_streams: int = 256
    calls: RateSettings = RateSettings(2000, 4000)


@dataclass(frozen=True)
class KeepaliveSettings:
    min_ping_interval_seconds: float = 60.0
    max_ping_strikes: int = 2
    permit_without_calls: bool = False
    time_seconds: float = 300.0
    timeout_seconds: float = 20.0


@dataclass(frozen=True)
class LocalAdminSettings:
    """The default start's admin credential (used only when callers are not authenticated)."""

    token_file: Path | None = None  # None: default_admin_token_file()
    anonymous_scopes: frozenset[str] = frozenset({"authz:check"})


@dataclass(frozen=True)
class EdgeSettings:
    connections: ConnectionSettings = ConnectionSettings()
    keepalive: KeepaliveSettings = KeepaliveSettings()
    local_admin: LocalAdminSettings = LocalAdminSettings()


@dataclass(frozen=True)
class AdmissionSettings:
    """Overload shedding of decision RPCs (policy_engine/server/admission.py)."""

    enabled: bool = True
    queue_budget_ms: float = 20.0
    max_in_flight_decisions: int = 20_000
    retry_after_ms: float = 20.0


@dataclass(frozen=True)
class FileConfig:
    security: SecuritySettings = SecuritySettings()
    audit: AuditSettings = AuditSettings()
    threats: ThreatSettings = ThreatSettings()
    metrics_listen: str | None = None
    edge: EdgeSettings = EdgeSettings()
    admission: AdmissionSettings = AdmissionSettings()


@dataclass(frozen=True)
class Settings:
    """How `policy-engine serve` runs.

    listen    host:port of the gRPC server (POLICY_ENGINE_LISTEN)
    db_url    any SQLAlchemy URL (POLICY_ENGINE_DB); SQLite file by default
    policies  folder of policy sets imported at start when the database lacks them
    insecure  allow binding a non-loopback address without authentication
    security  authentication, TLS and rate limits (from --config)
    """

    listen: str = DEFAULT_LISTEN
    db_url: str = DEFAULT_DB
    policies: Path | None = Path("policies")
    insecure: bool = False
    reload_interval: float = 1.0
    grace_seconds: float = 5.0
    security: SecuritySettings = SecuritySettings()
    audit: AuditSettings = AuditSettings()
    threats: ThreatSettings = ThreatSettings()
    metrics_listen: str | None = None
    edge: EdgeSettings = EdgeSettings()
    admission: AdmissionSettings = AdmissionSettings()


def split_host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"listen address {address!r} is not host:port")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_config(path: Path) -> FileConfig:
    """Read the YAML configuration file; ConfigError names the offending key."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    root = _Section(document, str(path))
    audit = root.section("audit")
    threats = root.section("threats")
    metrics = root.section("metrics")
    retention = audit.get("retention_days", int)
    on_loss = audit.get("on_loss", str, "count")
    if on_loss not in ("count", "fail_closed"):
        raise ConfigError(f"{audit.where}.on_loss: must be count or fail_closed")
    queue_size = audit.get("queue_size", int, AuditSettings.queue_size)
    if queue_size < MAX_BATCH_ITEMS:
        # A batch's decisions are queued together: a smaller queue could never take a full one.
        raise ConfigError(f"{audit.where}.queue_size: must be at least {MAX_BATCH_ITEMS}")
    max_wait = audit.get("max_wait_seconds", float, AuditSettings.max_wait_seconds)
    if not 0 <= max_wait <= 60:
        raise ConfigError(f"{audit.where}.max_wait_seconds: must be between 0 and 60")
    return FileConfig(
        security=load_security(path),
        audit=AuditSettings(
            enabled=audit.get("enabled", bool, True),
            replica_id=audit.get("replica_id", str),
            spill_dir=audit.path("spill_dir", path.parent) or AuditSettings.spill_dir,
            keys_file=audit.path("keys_file", path.parent),
            hashed=tuple(audit.get("hashed", list, [])),
            retention_days=retention,
            on_loss=on_loss,
            queue_size=queue_size,
            max_wait_seconds=max_wait,
            writer=_choice(audit, "writer", ("process", "thread"), "process"),
            writer_priority=_choice(audit, "writer_priority", ("normal", "idle"), "normal"),
        ),
        threats=ThreatSettings(
            default=_threat(threats.optional("default")),
            tenants={name: _threat(threats.section("tenants").optional(name)) for name in threats.section("tenants").data},
        ),
        metrics_listen=metrics.get("listen", str),
        edge=_edge(root.section("edge"), path.parent),
        admission=_admission(root.section("admission")),
    )


def _admission(section: _Section) -> AdmissionSettings:
    defaults = AdmissionSettings()
    settings = AdmissionSettings(
        enabled=section.get("enabled", bool, defaults.enabled),
        queue_budget_ms=section.get("queue_budget_ms", float, defaults.queue_budget_ms),
        max_in_flight_decisions=section.get("max_in_flight_decisions", int, defaults.max_in_flight_decisions),
        retry_after_ms=section.get("retry_after_ms", float, defaults.retry_after_ms),
    )
    for key in ("queue_budget_ms", "max_in_flight_decisions", "retry_after_ms"):
        if not getattr(settings, key) > 0:
            raise ConfigError(f"{section.where}.{key}: must be more than 0")
    return settings


def _choice(section: _Section, key: str, choices: tuple[str, ...], default: str) -> str:
    value = section.get(key, str, default)
    if value not in choices:
        raise ConfigError(f"{section.where}.{key}: must be one of {', '.join(choices)}")
    return value


def _threat(section: _Section | None) -> tuple[float, ...]:
    if section is None:
        return ThreatSettings.default
    actor_subjects = section.get("actor_subjects", int, 3)
    if actor_subjects < 1:
        raise ConfigError(f"{section.where}.actor_subjects: must be at least 1")
    return (
        section.get("denials", int, 0),
        section.get("window_seconds", float, 60.0),
        section.get("quarantine_seconds", float, 0.0),
        actor_subjects,
    )


def load_security(path: Path) -> SecuritySettings:
    """Read the security part of the YAML configuration file."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    root = _Section(document, str(path))
    auth = root.section("auth")
    base = path.parent
    callers = auth.optional("callers")
    subjects = auth.optional("subjects")
    tls = root.optional("tls")
    limits = root.optional("rate_limits")
    redis = root.optional("redis")
    return SecuritySettings(
        callers=_callers(callers, base) if callers else None,
        subjects=_subjects(subjects, base) if subjects else None,
        tls=_tls(tls, base) if tls else None,
        rate_limits=_rate_limits(limits) if limits else RateLimitSettings(),
        redis=_redis(redis) if redis else None,
    )


def _redis(section: _Section) -> RedisSettings:
    url = section.get("url", str, required=True)
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"{section.where}.url: must be a redis://, rediss:// or unix:// URL")
    timeout = section.get("timeout_seconds", float, RedisSettings.timeout_seconds)
    if not 0 < timeout <= 5:
        raise ConfigError(f"{section.where}.timeout_seconds: must be more than 0 and at most 5")
    retry = section.get("retry_seconds", float, RedisSettings.retry_seconds)
    if not retry > 0:
        raise ConfigError(f"{section.where}.retry_seconds: must be more than 0")
    return RedisSettings(url, section.get("key_prefix", str, RedisSettings.key_prefix), timeout, retry)


class _Section:
    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: must be a mapping")
        self.data = data
        self.where = where

    def optional(self, key: str) -> _Section | None:
        return _Section(self.data[key], f"{self.where}.{key}") if self.data.get(key) is not None else None

    def section(self, key: str) -> _Section:
        return self.optional(key) or _Section({}, f"{self.where}.{key}")

    def get(self, key: str, kind: type, default: Any = None, required: bool = False) -> Any:
        if key not in self.data or self.data[key] is None:
            if required:
                raise ConfigError(f"{self.where}.{key}: is required")
            return default
        value = self.data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise ConfigError(f"{self.where}.{key}: must be {kind.__name__}")
        return value

    def path(self, key: str, base: Path) -> Path | None:
        value = self.get(key, str)
        return None if value is None else (base / value)

    def scopes(self, key: str) -> dict[str, frozenset[str]]:
        mapping = self.get(key, dict, {})
        result = {}
        for name, scopes in mapping.items():
            if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
                raise ConfigError(f"{self.where}.{key}.{name}: must be a list of scopes")
            result[str(name)] = frozenset(scopes)
        return result


def _tokens(section: _Section, base: Path) -> TokenSettings | None:
    if section.get("issuer", str) is None and section.get("jwks_file", str) is None and section.get("jwks_url", str) is None:
        return None
    algorithms = tuple(section.get("algorithms", list, list(ASYMMETRIC)))
    settings = TokenSettings(
        issuer=section.get("issuer", str, required=True),
        audience=section.get("audience", str, required=True),
        jwks_file=section.path("jwks_file", base),
        jwks_url=section.get("jwks_url", str),
        hmac_secret_file=section.path("hmac_secret_file", base),
        algorithms=algorithms,
        leeway_seconds=section.get("leeway_seconds", int, 30),
        max_lifetime_seconds=section.get("max_lifetime_seconds", int, TokenSettings.max_lifetime_seconds),
        refresh_interval_seconds=section.get("refresh_interval_seconds", float, 60.0),
        fetch_timeout_seconds=section.get("fetch_timeout_seconds", float, 2.0),
    )
    if settings.jwks_file is None and settings.jwks_url is None and settings.hmac_secret_file is None:
        raise ConfigError(f"{section.where}: needs jwks_file, jwks_url or hmac_secret_file")
    if settings.max_lifetime_seconds <= 0:
        raise ConfigError(f"{section.where}.max_lifetime_seconds: must be more than 0")
    if "none" in (a.lower() for a in algorithms):
        raise ConfigError(f"{section.where}.algorithms: 'none' is never allowed")
    return settings


def _callers(section: _Section, base: Path) -> CallerAuthSettings:
    return CallerAuthSettings(
        tokens=_tokens(section, base),
        roles_claim=section.get("roles_claim", str, "roles"),
        role_scopes=section.scopes("role_scopes"),
        principals=section.scopes("principals"),
    )


def _subjects(section: _Section, base: Path) -> SubjectAuthSettings:
    return SubjectAuthSettings(
        tokens=_tokens(section, base),
        attributes=section.get("attributes", dict, {}),
        tenant_claim=section.get("tenant_claim", str, "tenant"),
        verified_tenants=frozenset(section.get("verified_tenants", list, [])),
    )


def _tls(section: _Section, base: Path) -> TlsSettings:
    return TlsSettings(
        cert_file=section.path("cert_file", base) or _missing(section, "cert_file"),
        key_file=section.path("key_file", base) or _missing(section, "key_file"),
        client_ca_file=section.path("client_ca_file", base),
        require_client_cert=section.get("require_client_cert", bool, False),
        client_identity=_choice(section, "client_identity", ("uri_san", "dns_san", "common_name"), "uri_san"),
    )


def _rate(section: _Section | None, default: RateSettings) -> RateSettings:
    if section is None:
        return default
    rate, burst = section.get("rate", float, default.rate), section.get("burst", float, default.burst)
    # A rate of 0 would never refill; a burst under one request would never admit one.
    if not rate > 0:
        raise ConfigError(f"{section.where}.rate: must be more than 0")
    if not burst >= 1:
        raise ConfigError(f"{section.where}.burst: must be at least 1")
    return RateSettings(rate, burst)


def _rate_limits(section: _Section) -> RateLimitSettings:
    defaults = RateLimitSettings()
    rpcs_section = section.section("rpcs")
    return RateLimitSettings(
        caller=_rate(section.optional("caller"), defaults.caller),
        decisions=_rate(section.optional("decisions"), defaults.decisions),
        subject=_rate(section.optional("subject"), defaults.subject),
        rpcs={name: _rate(rpcs_section.optional(name), defaults.caller) for name in rpcs_section.data},
        max_concurrent_rpcs=section.get("max_concurrent_rpcs", int, defaults.max_concurrent_rpcs),
        max_per_connection=section.get("max_per_connection", int, defaults.max_per_connection),
    )


def _strings(section: _Section, key: str, default: list[str]) -> frozenset[str]:
    values = section.get(key, list, default)
    if not all(isinstance(v, str) for v in values):
        raise ConfigError(f"{section.where}.{key}: must be a list of strings")
    return frozenset(values)


def _edge(section: _Section, base: Path) -> EdgeSettings:
    connections, keepalive, admin = (section.section(k) for k in ("connections", "keepalive", "local_admin"))
    c, k = ConnectionSettings(), KeepaliveSettings()
    settings = EdgeSettings(
        connections=ConnectionSettings(
            max=connections.get("max", int, c.max),
            idle_timeout_seconds=connections.get("idle_timeout_seconds", float, c.idle_timeout_seconds),
            max_age_seconds=connections.get("max_age_seconds", float, c.max_age_seconds),
            max_age_grace_seconds=connections.get("max_age_grace_seconds", float, c.max_age_grace_seconds),
            handshake_timeout_seconds=connections.get(
                "handshake_timeout_seconds", float, c.handshake_timeout_seconds
            ),
            max_streams=connections.get("max_streams", int, c.max_streams),
            calls=_rate(connections.optional("calls"), c.calls),
        ),
        keepalive=KeepaliveSettings(
            min_ping_interval_seconds=keepalive.get("min_ping_interval_seconds", float, k.min_ping_interval_seconds),
            max_ping_strikes=keepalive.get("max_ping_strikes", int, k.max_ping_strikes),
            permit_without_calls=keepalive.get("permit_without_calls", bool, k.permit_without_calls),
            time_seconds=keepalive.get("time_seconds", float, k.time_seconds),
            timeout_seconds=keepalive.get("timeout_seconds", float, k.timeout_seconds),
        ),
        local_admin=LocalAdminSettings(
            token_file=admin.path("token_file", base),
            anonymous_scopes=_strings(admin, "anonymous_scopes", ["authz:check"]),
        ),
    )
    for where, value, low in (
        ("connections.max", settings.connections.max, 0),
        ("connections.max_streams", settings.connections.max_streams, 1),
        ("keepalive.max_ping_strikes", settings.keepalive.max_ping_strikes, 0),
    ):
        if value < low:
            raise ConfigError(f"{section.where}.{where}: must be at least {low}")
    for where, seconds in (
        ("connections.idle_timeout_seconds", settings.connections.idle_timeout_seconds),
        ("connections.max_age_seconds", settings.connections.max_age_seconds),
        ("connections.max_age_grace_seconds", settings.connections.max_age_grace_seconds),
        ("connections.handshake_timeout_seconds", settings.connections.handshake_timeout_seconds),
        ("keepalive.min_ping_interval_seconds", settings.keepalive.min_ping_interval_seconds),
        ("keepalive.time_seconds", settings.keepalive.time_seconds),
        ("keepalive.timeout_seconds", settings.keepalive.timeout_seconds),
    ):
        if not seconds > 0:
            raise ConfigError(f"{section.where}.{where}: must be more than 0")
    return settings


def _missing(section: _Section, key: str) -> Path:
    raise ConfigError(f"{section.where}.{key}: is required")
