"""Assemble the edge's security from settings: caller authentication, end-user tokens, TLS."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import grpc

from policy_engine.auth.authorizer import RpcAuthorizer
from policy_engine.auth.callers import CallerAuthenticator
from policy_engine.auth.keys import KeySource
from policy_engine.auth.subjects import ClaimMapping, SubjectTokenResolver
from policy_engine.auth.tokens import TokenVerifier
from policy_engine.config import (
    ConfigError,
    EdgeSettings,
    RateLimitSettings,
    RateSettings,
    RedisSettings,
    SecuritySettings,
    TlsSettings,
    TokenSettings,
)
from policy_engine.server.interceptors import Guard
from policy_engine.server.throttling import ConnectionLimiter, RateLimiter
from policy_engine.service.counters import Counters, RedisCounters

__all__ = ["build_guard", "build_subject_resolver", "server_credentials", "shared_counters"]

log = logging.getLogger(__name__)


def build_guard(
    security: SecuritySettings, edge: EdgeSettings | None = None, local_admin_token: str | None = None
) -> Guard:
    """`local_admin_token`: the credential of the admin when callers are not authenticated."""
    edge = edge or EdgeSettings()
    callers = security.callers
    authenticator = CallerAuthenticator(
        _verifier(callers.tokens) if callers and callers.tokens else None,
        mtls=security.tls is not None and security.tls.require_client_cert,
        roles_claim=callers.roles_claim if callers else "roles",
        role_scopes=callers.role_scopes if callers else None,
        principals=callers.principals if callers else None,
        local_admin_token=local_admin_token,
        anonymous_scopes=edge.local_admin.anonymous_scopes,
        peer_identity_source=security.tls.client_identity if security.tls is not None else "uri_san",
    )
    limits: RateLimitSettings = security.rate_limits
    counters = shared_counters(security.redis)

    def limiter(rate: RateSettings, name: str) -> RateLimiter:
        return RateLimiter(rate.rate, rate.burst, counters=counters, name=name)

    return Guard(
        authenticator,
        RpcAuthorizer(),
        limiter(limits.caller, "caller"),
        limiter(limits.decisions, "decisions"),
        limiter(limits.subject, "subject"),
        {rpc: limiter(rate, f"rpc:{rpc}") for rpc, rate in limits.rpcs.items()},
        ConnectionLimiter(limits.max_per_connection),
        RateLimiter(edge.connections.calls.rate, edge.connections.calls.burst),
        # Its own resolver (and verifier cache): the guard limits the subject a token names.
        subjects=build_subject_resolver(security),
    )


def shared_counters(redis: RedisSettings | None) -> Counters | None:
    """Counters shared through Redis when configured; None: each user keeps its own in-process ones."""
    if redis is None:
        return None
    return RedisCounters(
        redis.url, prefix=redis.key_prefix, timeout=redis.timeout_seconds, retry_seconds=redis.retry_seconds
    )


def build_subject_resolver(security: SecuritySettings) -> SubjectTokenResolver:
    subjects = security.subjects
    if subjects is None:
        return SubjectTokenResolver()
    attributes = {}
    for name, spec in subjects.attributes.items():
        if isinstance(spec, str):
            attributes[name] = ClaimMapping(spec)
        elif isinstance(spec, dict) and isinstance(spec.get("claim"), str):
            attributes[name] = ClaimMapping(spec["claim"], spec.get("contains"))
        else:
            raise ConfigError(f"auth.subjects.attributes.{name}: must be a claim name or {{claim, contains}}")
    return SubjectTokenResolver(
        verifier=_verifier(subjects.tokens) if subjects.tokens else None,
        attributes=attributes,
        tenant_claim=subjects.tenant_claim,
        verified_tenants=subjects.verified_tenants,
    )


def _verifier(tokens: TokenSettings) -> TokenVerifier:
    secret = tokens.hmac_secret_file.read_bytes().strip() if tokens.hmac_secret_file else None
    keys = KeySource(
        jwks_file=tokens.jwks_file,
        jwks_url=tokens.jwks_url,
        hmac_secret=secret,
        fetch_timeout=tokens.fetch_timeout_seconds,
        refresh_interval=tokens.refresh_interval_seconds,
    )
    return TokenVerifier(
        keys,
        issuer=tokens.issuer,
        audience=tokens.audience,
        algorithms=tokens.algorithms,
        leeway=tokens.leeway_seconds,
        max_lifetime=tokens.max_lifetime_seconds,
    )


def server_credentials(tls: TlsSettings) -> grpc.ServerCredentials:
    """TLS (and mTLS) credentials that pick up renewed certificate files without a restart."""
    watched = [tls.cert_file, tls.key_file] + ([tls.client_ca_file] if tls.client_ca_file else [])
    state = {"stamp": _stamp(watched)}

    def configuration() -> grpc.ServerCertificateConfiguration:
        root = tls.client_ca_file.read_bytes() if tls.client_ca_file else None
        return grpc.ssl_server_certificate_configuration(
            [(tls.key_file.read_bytes(), tls.cert_file.read_bytes())], root_certificates=root
        )

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        stamp = _stamp(watched)
        if stamp == state["stamp"]:
            return None
        try:
            renewed = configuration()
        except OSError as exc:
            log.error("cannot reload TLS certificate: %s", exc)
            return None
        state["stamp"] = stamp
        log.info("reloaded TLS certificate from %s", tls.cert_file)
        return renewed

    return grpc.dynamic_ssl_server_credentials(
        configuration(), fetch, require_client_authentication=tls.require_client_cert
    )


def _stamp(paths: list[Path]) -> tuple[float, ...]:
    return tuple(os.stat(p).st_mtime_ns for p in paths)
