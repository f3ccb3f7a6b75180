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
from tests.support.credentials import AUDIENCE, ISSUER, TokenFactory, b64, jwks_server, make_pki

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
    "lives ten years": lambda: FACTORY.token(exp=int(time.time()) + 10 * 365 * 86400),
    "lives 25 hours": lambda: FACTORY.token(iat=int(time.time()) - 3600, exp=int(time.time()) + 24 * 3600),
    "no iat and exp in a year": lambda: FACTORY.token(iat=None, exp=int(time.time()) + 365 * 86400),
    "exp of 10**400": lambda: FACTORY.token(exp=10**400),
    "iat of 10**400": lambda: FACTORY.token(iat=10**400),
    "nbf of 10**400": lambda: FACTORY.token(nbf=10**400),
    "exp of -10**400": lambda: FACTORY.token(exp=-(10**400)),
    "exp of 1e400 (infinity when parsed)": lambda: FACTORY.raw(
        json.dumps(FACTORY.claims(exp="__EXP__")).replace('"__EXP__"', "1e400")
    ),
    "exp negative": lambda: FACTORY.token(exp=-1),
    "exp true": lambda: FACTORY.token(exp=True),
    "exp a list": lambda: FACTORY.token(exp=[int(time.time()) + 60]),
    "exp an object": lambda: FACTORY.token(exp={"$numberLong": "9999999999"}),
    "iat as NaN": lambda: FACTORY.raw(json.dumps({**FACTORY.claims(), "iat": float("nan")})),
    "iat as a string": lambda: FACTORY.token(iat="0"),
    "nbf negative infinity": lambda: FACTORY.raw(json.dumps({**FACTORY.claims(), "nbf": float("-inf")})),
    "sub with a zero-width space": lambda: FACTORY.token(sub="backend-service\u200b"),
    "sub with a zero-width joiner inside": lambda: FACTORY.token(sub="ali\u200dce"),
    "sub with a right-to-left override": lambda: FACTORY.token(sub="alice\u202egnp.exe"),
    "sub with a Cyrillic look-alike": lambda: FACTORY.token(sub="b\u043eb"),
    "sub in fullwidth letters": lambda: FACTORY.token(sub="\uff42\uff4f\uff42"),
    "sub with a soft hyphen": lambda: FACTORY.token(sub="bo\u00adb"),
    "sub with a no-break space": lambda: FACTORY.token(sub="bob\u00a0"),
    "sub with a BOM": lambda: FACTORY.token(sub="\ufeffbob"),
    "sub with a decomposed accent": lambda: FACTORY.token(sub="jose\u0301"),
    "sub with a tab": lambda: FACTORY.token(sub="bob\tadmin"),
    "sub with a wildcard": lambda: FACTORY.token(sub="*"),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_attack_is_refused(verifier: TokenVerifier, attack: str) -> None:
    """Each forged or malformed token is refused with UnauthenticatedError."""
    with pytest.raises(UnauthenticatedError) as caught:
        verifier.verify(ATTACKS[attack]())
    assert "BEGIN" not in str(caught.value) and "kty" not in str(caught.value)


def test_odd_claims_are_refused_naming_the_claim(verifier: TokenVerifier) -> None:
    """Huge, infinite, negative or non-numeric dates and unsafe subjects name the claim at fault."""
    for claims, name in (
        ({"exp": 10**400}, "exp"),
        ({"iat": "0"}, "iat"),
        ({"nbf": True}, "nbf"),
        ({"sub": "bob\u200b"}, "sub"),
    ):
        with pytest.raises(UnauthenticatedError, match=f"token claim {name}:"):
            verifier.verify(FACTORY.token(**claims))


def test_lifetime_bound_is_configurable_and_fractional_dates_pass(tmp_path: Path) -> None:
    """A week-long token passes a verifier allowing a week; fractional NumericDates are accepted."""
    jwks = FACTORY.write_jwks(tmp_path / "jwks.json")
    week = TokenVerifier(KeySource(jwks_file=jwks), issuer=ISSUER, audience=AUDIENCE, max_lifetime=7 * 86400)
    now = time.time()
    assert week.verify(FACTORY.token(iat=int(now), exp=int(now) + 6 * 86400)).subject == "backend-service"
    assert week.verify(FACTORY.token(iat=now - 0.5, exp=now + 60.25)).subject == "backend-service"
    with pytest.raises(UnauthenticatedError, match="lifetime"):
        week.verify(FACTORY.token(iat=int(now), exp=int(now) + 8 * 86400))
    with pytest.raises(ValueError, match="max_lifetime"):
        TokenVerifier(KeySource(jwks_file=jwks), issuer=ISSUER, audience=AUDIENCE, max_lifetime=0)


def test_safe_unicode_subjects_still_verify(verifier: TokenVerifier) -> None:
    """Subjects in one script, composed (NFC) accents and e-mail or SPIFFE forms are accepted."""
    for subject in ("josé", "Ελένη", "Дмитрий", "田中", "alice@example.com", "spiffe://acme/ns/x/sa/y", "auth0|123"):
        assert verifier.verify(FACTORY.token(sub=subject)).subject == subject


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

    def test_mtls_identity_gets_configured_scopes(self, tmp_path: Path) -> None:
        """A client certificate identity is a principal with the scopes configured for it."""
        pki = make_pki(tmp_path, "spiffe://acme/b")
        auth = CallerAuthenticator(None, mtls=True, principals={"spiffe://acme/b": frozenset({"authz:check"})})
        principal = auth.authenticate(None, {"x509_pem_cert": [pki.client_cert.read_bytes()]})
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
