"""Token verification refuses every forged, stale or malformed token, with a safe reason."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from policy_engine.auth.callers import CallerAuthenticator
from policy_engine.auth.keys import KeySource
from policy_engine.auth.tokens import TokenVerifier
from policy_engine.errors import UnauthenticatedError
from tests.support.credentials import AUDIENCE, ISSUER, TokenFactory, b64, jwks_server

FACTORY = TokenFactory()


@pytest.fixture(scope="module")
def verifier(tmp_path_factory: pytest.TempPathFactory) -> TokenVerifier:
    jwks = FACTORY.write_jwks(tmp_path_factory.mktemp("keys") / "jwks.json")
    return TokenVerifier(KeySource(jwks_file=jwks), issuer=ISSUER, audience=AUDIENCE)


def test_valid_rsa_and_ec_tokens_verify(verifier: TokenVerifier) -> None:
    """Tokens signed by either configured key verify and name their subject."""
    assert verifier.verify(FACTORY.token("rsa")).subject == "backend-service"
    assert verifier.verify(FACTORY.token("ec", sub="other")).subject == "other"


ATTACKS = {
    "unsigned alg none": lambda: FACTORY.unsigned(),
    "signed by another key": lambda: FACTORY.token("stranger"),
    "HS256 keyed with the RSA public key": lambda: FACTORY.hs256_with_public_key(),
    "expired": lambda: FACTORY.token(exp=int(time.time()) - 3600),
    "not yet valid": lambda: FACTORY.token(nbf=int(time.time()) + 3600),
    "issued in the future": lambda: FACTORY.token(iat=int(time.time()) + 3600),
    "wrong issuer": lambda: FACTORY.token(iss="https://evil.test/"),
    "wrong audience": lambda: FACTORY.token(aud="someone-else"),
    "kid pointing nowhere": lambda: FACTORY.token(header={"kid": "nope"}),
    "kid containing a path": lambda: FACTORY.token(header={"kid": "../../etc/passwd"}),
    "kid not a string": lambda: b64(json.dumps({"alg": "RS256", "kid": 7}).encode())
    + FACTORY.token()[FACTORY.token().index("."):],
    "token of 100 KB": lambda: FACTORY.token(padding="x" * 100_000),
    "no exp": lambda: FACTORY.token(exp=None),
    "no aud": lambda: FACTORY.token(aud=None),
    "no sub": lambda: FACTORY.token(sub=None),
    "exp as NaN": lambda: FACTORY.raw(json.dumps({**FACTORY.claims(), "exp": float("nan")})),
    "exp as infinity": lambda: FACTORY.raw(json.dumps({**FACTORY.claims(), "exp": float("inf")})),
    "exp as a string": lambda: FACTORY.token(exp="9999999999"),
    "sub as a list": lambda: FACTORY.token(sub=["admin"]),
    "sub empty": lambda: FACTORY.token(sub=" "),
    "jku to an attacker's keys": lambda: FACTORY.token("stranger", header={"jku": "http://evil.test/jwks"}),
    "x5u to an attacker's cert": lambda: FACTORY.token("stranger", header={"x5u": "http://evil.test/c.pem"}),
    "not a JWS": lambda: "not-a-token",
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_attack_is_refused(verifier: TokenVerifier, attack: str) -> None:
    """Each forged or malformed token is refused with UnauthenticatedError."""
    with pytest.raises(UnauthenticatedError) as caught:
        verifier.verify(ATTACKS[attack]())
    assert "BEGIN" not in str(caught.value) and "kty" not in str(caught.value)


def test_hmac_only_with_explicit_secret(tmp_path: Path) -> None:
    """HS256 is refused unless a secret is configured, and then verifies against that secret only."""
    with pytest.raises(ValueError, match="secret"):
        TokenVerifier(KeySource(), issuer=ISSUER, audience=AUDIENCE, algorithms=["HS256"])
    from joserfc import jwt
    from joserfc.jwk import OctKey

    secret = b"s" * 32
    verifier = TokenVerifier(KeySource(hmac_secret=secret), issuer=ISSUER, audience=AUDIENCE, algorithms=["HS256"])
    token = jwt.encode({"alg": "HS256"}, FACTORY.claims(), OctKey.import_key(secret))
    assert verifier.verify(token).subject == "backend-service"
    with pytest.raises(UnauthenticatedError):
        verifier.verify(FACTORY.token("rsa"))


def test_jwks_url_is_fetched_and_cached() -> None:
    """Keys from a JWKS URL verify tokens; an unknown kid triggers at most one refetch per interval."""
    with jwks_server(FACTORY.jwks()) as url:
        keys = KeySource(jwks_url=url, refresh_interval=3600)
        verifier = TokenVerifier(keys, issuer=ISSUER, audience=AUDIENCE)
        assert verifier.verify(FACTORY.token("ec")).subject == "backend-service"
    # the server is gone: cached keys still verify, an unknown kid cannot trigger a fetch
    assert verifier.verify(FACTORY.token("rsa")).subject == "backend-service"
    with pytest.raises(UnauthenticatedError, match="unknown key"):
        verifier.verify(FACTORY.token(header={"kid": "rotated"}))


def test_jwks_url_that_does_not_answer() -> None:
    """A JWKS URL that cannot be reached refuses tokens instead of hanging or allowing."""
    keys = KeySource(jwks_url="http://127.0.0.1:9/jwks.json", fetch_timeout=0.5)
    verifier = TokenVerifier(keys, issuer=ISSUER, audience=AUDIENCE)
    with pytest.raises(UnauthenticatedError, match="unavailable"):
        verifier.verify(FACTORY.token())


def test_jwks_with_private_material_is_refused(tmp_path: Path) -> None:
    """A key file carrying private keys is a misconfiguration and is refused at start."""
    from joserfc.jwk import KeySet

    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(KeySet([FACTORY.rsa]).as_dict(private=True)))
    with pytest.raises(ValueError, match="private"):
        KeySource(jwks_file=path)


class TestCallerAuthenticator:
    def test_scopes_from_claim_roles_and_principal_map(self, verifier: TokenVerifier) -> None:
        """A caller's scopes join the token's scope claim, its roles' scopes and its configured scopes."""
        auth = CallerAuthenticator(
            verifier,
            role_scopes={"release-manager": frozenset({"policy:activate"})},
            principals={"backend-service": frozenset({"policy:read"})},
        )
        token = FACTORY.token(scope="authz:check", roles=["release-manager"])
        principal = auth.authenticate(f"Bearer {token}", None)
        assert principal.scopes == {"authz:check", "policy:activate", "policy:read"}

    def test_missing_or_malformed_header(self, verifier: TokenVerifier) -> None:
        """No credentials, or a non-bearer scheme, is UnauthenticatedError."""
        auth = CallerAuthenticator(verifier)
        with pytest.raises(UnauthenticatedError):
            auth.authenticate(None, None)
        with pytest.raises(UnauthenticatedError):
            auth.authenticate(f"Basic {FACTORY.token()}", None)

    def test_mtls_identity_gets_configured_scopes(self) -> None:
        """A client certificate identity is a principal with the scopes configured for it."""
        auth = CallerAuthenticator(None, mtls=True, principals={"spiffe://acme/b": frozenset({"authz:check"})})
        principal = auth.authenticate(None, "spiffe://acme/b")
        assert (principal.id, principal.method, principal.scopes) == ("spiffe://acme/b", "mtls", {"authz:check"})


def test_cached_token_still_expires(tmp_path: Path) -> None:
    """A token verified once is not re-checked on every call, but stops verifying at its exp."""
    jwks = FACTORY.write_jwks(tmp_path / "jwks.json")
    verifier = TokenVerifier(KeySource(jwks_file=jwks), issuer=ISSUER, audience=AUDIENCE, leeway=0)
    token = FACTORY.token(exp=int(time.time()) + 2)
    assert verifier.verify(token).subject == "backend-service"
    assert verifier.verify(token).subject == "backend-service"
    time.sleep(2.5)
    with pytest.raises(UnauthenticatedError, match="expired"):
        verifier.verify(token)
