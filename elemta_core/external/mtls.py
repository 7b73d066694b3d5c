"""go-plugin's AutoMTLS on the plugin socket.

At each launch the host makes a fresh key and self-signed certificate and passes the
certificate (PEM) in ``PLUGIN_CLIENT_CERT``; the plugin makes its own, serves TLS that
requires a client certificate signed by exactly that one, and answers with its certificate
(DER, base64 without padding) in the handshake line's sixth field. Neither key ever leaves
its process, so another local process that reaches the socket can neither call the plugin
nor pose as it. Both certificates name ``localhost``, as go-plugin's do.
"""

from __future__ import annotations

import base64
import binascii
import datetime
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from elemta_core.external.constants import ENV_CLIENT_CERT
from elemta_core.external.errors import HandshakeError

__all__ = ["ENV_CLIENT_CERT", "SERVER_NAME", "CertPair", "generate", "server_cert_pem"]

SERVER_NAME = "localhost"
MAX_CERT_FIELD = 4000  # a P-256 certificate is ~600 bytes of base64


@dataclass(frozen=True)
class CertPair:
    cert_pem: bytes
    key_pem: bytes


def generate(org: str = "elemta") -> CertPair:
    """A P-256 key and a self-signed certificate for ``localhost`` valid for one day (a
    launch's lifetime, with room), usable for client and server auth, like go-plugin's."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      x509.NameAttribute(NameOID.COMMON_NAME, SERVER_NAME)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(seconds=30))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(SERVER_NAME)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True,
                                     key_cert_sign=True, content_commitment=False,
                                     data_encipherment=False, key_agreement=False,
                                     crl_sign=False, encipher_only=False,
                                     decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH,
                                              ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertPair(cert.public_bytes(serialization.Encoding.PEM),
                    key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))


def server_cert_pem(field: str) -> bytes:
    """The plugin's certificate from the handshake's sixth field, as PEM for gRPC; a field
    that is not one is a HandshakeError saying so."""
    if len(field) > MAX_CERT_FIELD:
        raise HandshakeError(f"the handshake's certificate field is over {MAX_CERT_FIELD} "
                             "characters")
    try:
        der = base64.b64decode(field + "=" * (-len(field) % 4), validate=True)
        cert = x509.load_der_x509_certificate(der)
    except (binascii.Error, ValueError) as e:
        raise HandshakeError(f"the handshake's certificate field is not a base64 DER "
                             f"certificate: {e}") from None
    return cert.public_bytes(serialization.Encoding.PEM)
