"""The caller identity of an mTLS peer: its certificate's URI SAN (e.g. SPIFFE id), else its CN."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cryptography import x509
from cryptography.x509.oid import NameOID

__all__ = ["peer_identity"]


def peer_identity(auth_context: Mapping[str, Sequence[bytes]]) -> str | None:
    """The identity in a verified client certificate, or None when the peer presented none."""
    pem = auth_context.get("x509_pem_cert")
    if not pem:
        return None
    certificate = x509.load_pem_x509_certificate(pem[0])
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = names.get_values_for_type(x509.UniformResourceIdentifier)
        if uris:
            return str(uris[0])
    except x509.ExtensionNotFound:
        pass
    common_names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(common_names[0].value) if common_names else None
