"""Verification keys, from configuration only: a JWKS file, a JWKS URL, an explicit HMAC secret.

Keys named by a token's own headers (`jwk`, `jku`, `x5u`, `x5c`) are never
used. A JWKS URL is fetched with a timeout, cached, and refreshed when a
token names an unknown `kid`, at most once per refresh interval.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from pathlib import Path

from joserfc.jwk import KeySet, OctKey

from policy_engine.errors import UnauthenticatedError

__all__ = ["KeySource"]

log = logging.getLogger(__name__)


class KeySource:
    """The public keys (and optional HMAC secret) tokens may be verified with."""

    def __init__(
        self,
        *,
        jwks_file: Path | None = None,
        jwks_url: str | None = None,
        hmac_secret: bytes | None = None,
        fetch_timeout: float = 2.0,
        refresh_interval: float = 60.0,
    ) -> None:
        self._jwks_file = jwks_file
        self._jwks_url = jwks_url
        self._hmac = OctKey.import_key(hmac_secret) if hmac_secret else None
        self._fetch_timeout = fetch_timeout
        self._refresh_interval = refresh_interval
        self._lock = threading.Lock()
        self._keys: KeySet | None = None
        self._fetched_at = float("-inf")
        if jwks_file is not None:
            self._keys = _parse(jwks_file.read_bytes())

    @property
    def has_hmac(self) -> bool:
        return self._hmac is not None

    def hmac_key(self) -> OctKey:
        if self._hmac is None:
            raise UnauthenticatedError("HMAC-signed tokens are not accepted")
        return self._hmac

    def public_key(self, kid: str | None):  # type: ignore[no-untyped-def]
        """The configured public key for `kid`; refreshes a JWKS URL once per interval on a miss."""
        keys = self._current()
        key = _find(keys, kid)
        if key is None and self._jwks_url is not None and self._may_refresh():
            keys = self._fetch()
            key = _find(keys, kid)
        if key is None:
            raise UnauthenticatedError("token signed by an unknown key")
        return key

    def _current(self) -> KeySet | None:
        if self._keys is None and self._jwks_url is not None and self._may_refresh():
            return self._fetch()
        return self._keys

    def _may_refresh(self) -> bool:
        return time.monotonic() - self._fetched_at >= self._refresh_interval

    def _fetch(self) -> KeySet | None:
        with self._lock:
            if not self._may_refresh():
                return self._keys
            self._fetched_at = time.monotonic()
            try:
                with urllib.request.urlopen(self._jwks_url, timeout=self._fetch_timeout) as response:  # noqa: S310 - configured URL
                    self._keys = _parse(response.read(1_000_001))
            except (OSError, ValueError) as exc:
                log.warning("cannot fetch JWKS from %s: %s", self._jwks_url, exc)
                if self._keys is None:
                    raise UnauthenticatedError("token keys are unavailable") from exc
            return self._keys


def _parse(raw: bytes) -> KeySet:
    if len(raw) > 1_000_000:
        raise ValueError("JWKS larger than 1 MB")
    data = json.loads(raw)
    # Private members never belong in a verification set; refuse a JWKS that carries them.
    for key in data.get("keys", []):
        if any(member in key for member in ("d", "p", "q", "k")):
            raise ValueError("JWKS holds private or symmetric key material")
    return KeySet.import_key_set(data)


def _find(keys: KeySet | None, kid: str | None):  # type: ignore[no-untyped-def]
    if keys is None:
        return None
    if kid is None:
        return keys.keys[0] if len(keys.keys) == 1 else None
    for key in keys.keys:
        if key.kid == kid:
            return key
    return None
