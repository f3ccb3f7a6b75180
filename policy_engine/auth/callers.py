"""Authenticate the service's own callers: a bearer JWT, a verified mTLS client certificate,
or, when neither is configured, the local admin credential.

The local admin credential is what keeps the default start (no --config) safe on a shared
host: a random token created at first start in a file only its owner can read
(`default_admin_token_file()`, mode 0600 in a 0700 folder). Whoever presents it is the
local admin with every scope; every other caller is anonymous with `authz:check` only
(configurable), so no process that cannot read the file can push or activate. policyctl
reads the same file when it talks to a loopback address.
"""

from __future__ import annotations

import getpass
import hmac
import os
import secrets
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path

from policy_engine.auth.authorizer import scopes_for
from policy_engine.auth.peers import peer_identity
from policy_engine.auth.principal import ANONYMOUS, Principal
from policy_engine.auth.tokens import TokenVerifier
from policy_engine.errors import UnauthenticatedError

__all__ = [
    "ALL_SCOPES",
    "ANONYMOUS_SCOPES",
    "CallerAuthenticator",
    "LocalAdminCredentialError",
    "default_admin_token_file",
    "load_or_create_admin_token",
    "read_admin_token",
]

ALL_SCOPES = frozenset({"authz:check", "authz:explain", "policy:read", "policy:write", "policy:activate"})
ANONYMOUS_SCOPES = frozenset({"authz:check"})
ADMIN_TOKEN_ENV = "POLICY_ENGINE_ADMIN_TOKEN_FILE"


class LocalAdminCredentialError(Exception):
    """The local admin credential file cannot be created or is not safe to use."""


def default_admin_token_file() -> Path:
    """POLICY_ENGINE_ADMIN_TOKEN_FILE, else $XDG_STATE_HOME (~/.local/state)/policy-engine/admin-token."""
    configured = os.environ.get(ADMIN_TOKEN_ENV)
    if configured:
        return Path(configured).expanduser()
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "policy-engine" / "admin-token"


def load_or_create_admin_token(path: Path) -> str:
    """The token in `path`, created (random, 0600) when missing; refused when others can read it.

    Creation is atomic (written aside, then linked into place), so workers starting together
    all end up with the one token that won.
    """
    try:
        return _read_private(path)
    except FileNotFoundError:
        pass
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        aside = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, (secrets.token_urlsafe(32) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(aside, path)
        except FileExistsError:
            pass  # another process created it first: use theirs
        finally:
            os.unlink(aside)
        return _read_private(path)
    except LocalAdminCredentialError:
        raise
    except OSError as exc:
        raise LocalAdminCredentialError(
            f"cannot create the local admin credential {path}: {exc.strerror or exc}; "
            f"set edge.local_admin.token_file or {ADMIN_TOKEN_ENV} to a writable path"
        ) from exc


def read_admin_token(path: Path) -> str | None:
    """The token in `path` for a client, or None when there is none (or it is not private)."""
    try:
        return _read_private(path)
    except (OSError, LocalAdminCredentialError):
        return None


def _read_private(path: Path) -> str:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
            raise LocalAdminCredentialError(
                f"{path} must be a regular file owned by this user and readable by no one else "
                "(chmod 600)"
            )
        token = os.read(fd, 4096).decode("ascii", "replace").strip()
    finally:
        os.close(fd)
    if len(token) < 32:
        raise LocalAdminCredentialError(f"{path} does not hold a credential (too short)")
    return token


class CallerAuthenticator:
    """Turns a call's credentials into a Principal, or refuses it.

    With neither tokens nor client certificates configured (a mode only allowed on a
    loopback address, or with --insecure), a caller presenting `local_admin_token` as its
    bearer token is the local admin with every scope, a caller presenting nothing is
    anonymous with `anonymous_scopes`, and any other token is refused.
    """

    def __init__(
        self,
        verifier: TokenVerifier | None = None,
        *,
        mtls: bool = False,
        roles_claim: str = "roles",
        role_scopes: Mapping[str, frozenset[str]] | None = None,
        principals: Mapping[str, frozenset[str]] | None = None,
        local_admin_token: str | None = None,
        anonymous_scopes: frozenset[str] = ANONYMOUS_SCOPES,
        peer_identity_source: str = "uri_san",
    ) -> None:
        self._local_admin_token = local_admin_token
        self._anonymous = Principal(ANONYMOUS.id, anonymous_scopes, method="none")
        self._local_admin = Principal(f"local-admin:{_os_user()}", ALL_SCOPES, method="local")
        self._verifier = verifier
        self._mtls = mtls
        self._peer_identity_source = peer_identity_source
        self._roles_claim = roles_claim
        self._role_scopes = dict(role_scopes or {})
        self._principals = dict(principals or {})

    @property
    def enabled(self) -> bool:
        return self._verifier is not None or self._mtls

    def authenticate(
        self, authorization: str | None, peer: Mapping[str, Sequence[bytes]] | None
    ) -> Principal:
        """`authorization` is the metadata value ("Bearer <jwt>"); `peer` the call's TLS auth
        context (its client certificate is read only when no token is sent)."""
        if not self.enabled:
            return self._local(authorization)
        if authorization is not None and self._verifier is not None:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise UnauthenticatedError("authorization metadata must be 'Bearer <token>'")
            verified = self._verifier.verify(token.strip())
            claims = verified.claims
            return Principal(
                id=verified.subject,
                scopes=scopes_for(
                    verified.subject,
                    _token_scopes(claims),
                    _strings(claims.get(self._roles_claim)),
                    self._role_scopes,
                    self._principals,
                ),
                method="jwt",
                claims=claims,
            )
        identity = peer_identity(peer, self._peer_identity_source) if peer and self._mtls else None
        if identity is not None:
            return Principal(
                id=identity,
                scopes=scopes_for(identity, frozenset(), frozenset(), {}, self._principals),
                method="mtls",
            )
        raise UnauthenticatedError("credentials required: a bearer token in 'authorization' metadata")

    def _local(self, authorization: str | None) -> Principal:
        if authorization is None:
            return self._anonymous
        scheme, _, token = authorization.partition(" ")
        expected = self._local_admin_token
        if (
            expected is not None
            and scheme.lower() == "bearer"
            and hmac.compare_digest(token.strip().encode(), expected.encode())
        ):
            return self._local_admin
        raise UnauthenticatedError("the bearer token is not this server's local admin credential")


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.geteuid())


def _token_scopes(claims: Mapping[str, object]) -> frozenset[str]:
    scope = claims.get("scope")
    if isinstance(scope, str):
        return frozenset(scope.split())
    return _strings(claims.get("scp"))


def _strings(value: object) -> frozenset[str]:
    if isinstance(value, list):
        return frozenset(v for v in value if isinstance(v, str))
    return frozenset()
