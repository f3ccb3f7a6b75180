"""The caller identity of an mTLS peer, from its certificate's subject alternative names.

By default the identity is the certificate's one URI SAN (a SPIFFE id such as
`spiffe://acme/backend`). The subject's common name is never read unless
configured (`tls.client_identity: common_name`): a CA that signs a CN of the
requester's choosing (common for server certificates) would otherwise hand out
any identity, `spiffe://acme/admin` included. A certificate with several URI
SANs (or, with `dns_san`, several DNS SANs) names no single identity and is
refused, as is one whose identity text is unsafe (auth/identifiers.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cryptography import x509
from cryptography.x509.oid import NameOID

from policy_engine.auth.identifiers import identity_problem
from policy_engine.errors import UnauthenticatedError

__all__ = ["IDENTITY_SOURCES", "peer_identity"]

# Where the identity comes from: the URI SAN, a DNS SAN, or (only when configured) the CN.
IDENTITY_SOURCES = ("uri_san", "dns_san", "common_name")


def peer_identity(auth_context: Mapping[str, Sequence[bytes]], source: str = "uri_san") -> str | None:
    """The identity in a verified client certificate; None when the peer presented none.

    UnauthenticatedError when the certificate names no identity of the configured kind,
    several of them, or an unsafe one."""
    pem = auth_context.get("x509_pem_cert")
    if not pem:
        return None
    certificate = x509.load_pem_x509_certificate(pem[0])
    if source == "common_name":
        names = [str(a.value) for a in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        kind = "subject common name"
    else:
        kind = "URI SAN" if source == "uri_san" else "DNS SAN"
        general = x509.UniformResourceIdentifier if source == "uri_san" else x509.DNSName
        try:
            sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            names = [str(name) for name in sans.get_values_for_type(general)]
        except x509.ExtensionNotFound:
            names = []
    if not names:
        raise UnauthenticatedError(f"client certificate has no {kind} to identify the caller")
    if len(names) > 1:
        raise UnauthenticatedError(f"client certificate has {len(names)} {kind}s: the caller is ambiguous")
    problem = identity_problem(names[0])
    if problem is not None:
        raise UnauthenticatedError(f"client certificate {kind}: {problem}")
    return names[0]
