"""Verify JWTs (joserfc) against configured keys, issuer and audience; refuse everything else.

Checks, in order: size; a compact JWS header whose `alg` is on the allow-list
(never `none`; HMAC only with a configured secret, and only against that
secret, never against an RSA/EC public key); the signature with a key from
configuration; then the claims: `iss` and `aud` must match, `exp` is
required, `exp`/`nbf`/`iat` must be plain numbers between 0 and the year 9999
(never a bool, string, NaN, infinity or a number too large for a float), the
token's lifetime at most `max_lifetime` (exp - iat; without `iat`, exp - now),
and `sub` a safe identity (auth/identifiers.py: no invisible or look-alike
characters).
"""

from __future__ import annotations

import base64
import json
import time
from collections import OrderedDict
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwt import JWTClaimsRegistry

from policy_engine.auth.identifiers import identity_problem
from policy_engine.auth.keys import KeySource
from policy_engine.errors import UnauthenticatedError

__all__ = ["ASYMMETRIC_ALGORITHMS", "DEFAULT_MAX_LIFETIME", "MAX_TOKEN_BYTES", "TokenVerifier"]

MAX_TOKEN_BYTES = 8 * 1024
DEFAULT_MAX_LIFETIME = 24 * 3600
_DATE_CLAIMS = ("exp", "nbf", "iat")
_LATEST_DATE = 253_402_300_799  # 9999-12-31T23:59:59Z
_CACHE_SIZE = 10_000
ASYMMETRIC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")


@dataclass(frozen=True)
class VerifiedToken:
    subject: str
    claims: Mapping[str, Any]


class TokenVerifier:
    """Verifies tokens of one issuer for one audience."""

    def __init__(
        self,
        keys: KeySource,
        *,
        issuer: str,
        audience: str,
        algorithms: Collection[str] = ASYMMETRIC_ALGORITHMS,
        leeway: int = 30,
        max_lifetime: int = DEFAULT_MAX_LIFETIME,
    ) -> None:
        """`max_lifetime`: the longest validity accepted, in seconds (exp - iat, or exp - now
        for a token without iat): a stolen long-lived token is a long-lived breach."""
        allowed = tuple(a for a in algorithms if a.lower() != "none")
        if any(a in HMAC_ALGORITHMS for a in allowed) and not keys.has_hmac:
            raise ValueError("HMAC algorithms need an explicitly configured secret")
        if not allowed:
            raise ValueError("no token algorithm is allowed")
        if max_lifetime <= 0:
            raise ValueError("max_lifetime must be positive")
        self._max_lifetime = max_lifetime
        self._keys = keys
        self._algorithms = allowed
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway
        # Verified tokens, until they expire: a backend sends the same token on every call,
        # and a signature check costs more than the decision it guards.
        self._verified: OrderedDict[str, tuple[VerifiedToken, float]] = OrderedDict()

    def verify(self, token: str) -> VerifiedToken:
        """The verified subject and claims, or UnauthenticatedError with a safe reason."""
        cached = self._verified.get(token)
        if cached is not None:
            verified, expires = cached
            if time.time() < expires + self._leeway:
                return verified
            self._verified.pop(token, None)
        verified = self._verify(token)
        self._verified[token] = (verified, float(verified.claims["exp"]))
        if len(self._verified) > _CACHE_SIZE:
            self._verified.popitem(last=False)
        return verified

    def _verify(self, token: str) -> VerifiedToken:
        if len(token) > MAX_TOKEN_BYTES:
            raise UnauthenticatedError(f"token larger than {MAX_TOKEN_BYTES} bytes")
        header = _header(token)
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self._algorithms:
            raise UnauthenticatedError("token algorithm not allowed")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise UnauthenticatedError("token key id is not a string")
        key = self._keys.hmac_key() if algorithm in HMAC_ALGORITHMS else self._keys.public_key(kid)
        try:
            decoded = jwt.decode(token, key, algorithms=[algorithm])
        except BadSignatureError as exc:
            raise UnauthenticatedError("token signature is not valid") from exc
        except JoseError as exc:
            raise UnauthenticatedError(f"token rejected: {exc.error}") from exc
        claims = decoded.claims
        self._check_dates(claims)
        registry = JWTClaimsRegistry(
            leeway=self._leeway,
            iss={"essential": True, "value": self._issuer},
            aud={"essential": True, "value": self._audience},
            exp={"essential": True},
            sub={"essential": True},
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError as exc:
            raise UnauthenticatedError("token expired") from exc
        except MissingClaimError as exc:
            raise UnauthenticatedError(f"token lacks required claims: {exc.description}") from exc
        except JoseError as exc:
            raise UnauthenticatedError(f"token claim rejected: {exc.description or exc.error}") from exc
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject.strip():
            raise UnauthenticatedError("token subject must be a non-empty string")
        problem = identity_problem(subject)
        if problem is not None:
            raise UnauthenticatedError(f"token claim sub: {problem}")
        return VerifiedToken(subject=subject, claims=claims)

    def _check_dates(self, claims: Mapping[str, Any]) -> None:
        """Dates are plain numbers in range, and the token lives no longer than allowed."""
        for name in _DATE_CLAIMS:
            value = claims.get(name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise UnauthenticatedError(f"token claim {name}: must be a number of seconds")
            # Compared as given: a float() of 10**400 would raise, and NaN compares false.
            if not (0 <= value <= _LATEST_DATE):
                raise UnauthenticatedError(f"token claim {name}: is out of range")
        expires, issued = claims.get("exp"), claims.get("iat")
        if expires is None:
            return  # the registry refuses it as missing
        start = issued if issued is not None else time.time()
        if expires - start > self._max_lifetime + self._leeway:
            raise UnauthenticatedError(
                f"token claim exp: lifetime longer than the {self._max_lifetime}s allowed"
            )


def _header(token: str) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3:
        raise UnauthenticatedError("token is not a compact JWS")
    try:
        padded = parts[0] + "=" * (-len(parts[0]) % 4)
        header = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UnauthenticatedError("token header is not valid") from exc
    if not isinstance(header, dict):
        raise UnauthenticatedError("token header is not valid")
    return header
