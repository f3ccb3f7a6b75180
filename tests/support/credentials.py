"""Real keys, tokens and certificates for security tests, generated fresh in each run."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

ISSUER = "https://idp.test/"
AUDIENCE = "policy-engine"
SUBJECT_AUDIENCE = "llm-backend"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenFactory:
    """Signs tokens with an RSA and an EC key that the server trusts, and one it does not."""

    def __init__(self) -> None:
        self.rsa = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})
        self.ec = ECKey.generate_key("P-256", parameters={"kid": "ec-1"})
        self.stranger = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})

    def jwks(self) -> dict[str, Any]:
        return KeySet([self.rsa, self.ec]).as_dict(private=False)

    def write_jwks(self, path: Path) -> Path:
        path.write_text(json.dumps(self.jwks()))
        return path

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "backend-service",
            "exp": now + 300,
            "iat": now,
            "scope": "authz:check",
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, key: str = "rsa", header: dict[str, Any] | None = None, **claims: Any) -> str:
        signer = {"rsa": self.rsa, "ec": self.ec, "stranger": self.stranger}[key]
        alg = "ES256" if key == "ec" else "RS256"
        full_header = {"alg": alg, "kid": signer.kid, **(header or {})}
        return jwt.encode(full_header, self.claims(**claims), signer)

    def unsigned(self, **claims: Any) -> str:
        header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        return f"{header}.{b64(json.dumps(self.claims(**claims)).encode())}."

    def hs256_with_public_key(self, **claims: Any) -> str:
        """The classic confusion attack: HMAC keyed with the server's RSA public key."""
        public_pem = self.rsa.as_pem(private=False)
        header = b64(json.dumps({"alg": "HS256", "kid": "rsa-1"}).encode())
        payload = b64(json.dumps(self.claims(**claims)).encode())
        signature = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{b64(signature)}"

    def raw(self, payload_json: str, key: str = "rsa") -> str:
        """Signs an arbitrary JSON text (for NaN dates and other malformed claims)."""
        signer = {"rsa": self.rsa, "ec": self.ec}[key]
        from joserfc import jws

        return jws.serialize_compact({"alg": "RS256", "kid": signer.kid}, payload_json.encode(), signer)


@contextmanager
def jwks_server(document: dict[str, Any]) -> Iterator[str]:
    """Serves a JWKS over real HTTP on a free loopback port; yields its URL."""
    body = json.dumps(document).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/jwks.json"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Pki:
    """A CA, a server certificate for 127.0.0.1, and a client certificate with a SPIFFE URI."""

    folder: Path
    ca_file: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    client_identity: str


def make_pki(
    folder: Path,
    client_identity: str = "spiffe://acme/backend",
    *,
    client_common_name: str = "backend",
    client_sans: list[x509.GeneralName] | None = None,
) -> Pki:
    """`client_sans` replaces the client certificate's one URI SAN (`client_identity`); an empty
    list gives it no SAN extension at all."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "policy-engine test CA")])
    ca = _certificate(ca_name, ca_name, ca_key.public_key(), ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _certificate(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]),
        ca_name,
        server_key.public_key(),
        ca_key,
        san=[x509.DNSName("localhost"), x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))],
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _certificate(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, client_common_name)]),
        ca_name,
        client_key.public_key(),
        ca_key,
        san=[x509.UniformResourceIdentifier(client_identity)] if client_sans is None else client_sans,
    )
    paths = {}
    for name, obj in (("ca.pem", ca), ("server.pem", server), ("client.pem", client)):
        paths[name] = folder / name
        paths[name].write_bytes(obj.public_bytes(serialization.Encoding.PEM))
    for name, key in (("server.key", server_key), ("client.key", client_key)):
        paths[name] = folder / name
        paths[name].write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return Pki(
        folder,
        paths["ca.pem"],
        paths["server.pem"],
        paths["server.key"],
        paths["client.pem"],
        paths["client.key"],
        client_identity,
    )


def _certificate(subject, issuer, public_key, signing_key, ca: bool = False, san=None):  # type: ignore[no-untyped-def]
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(signing_key, hashes.SHA256())
