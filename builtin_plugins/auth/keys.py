"""DKIM keys: load a private key for dkimpy, generate one, and render its DNS TXT record.

Keys are written as PEM (RSA as PKCS#1, which OpenDKIM reads too; Ed25519 as PKCS#8).
dkimpy wants RSA keys as PKCS#1 PEM and Ed25519 keys as a base64 32-byte seed, so loading
converts; dkimpy's own seed files are accepted as they are.
"""

from __future__ import annotations

import base64
import binascii
import enum
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa


class KeyType(str, enum.Enum):
    RSA = "rsa"
    ED25519 = "ed25519"

    @property
    def algorithm(self) -> bytes:
        return b"rsa-sha256" if self is KeyType.RSA else b"ed25519-sha256"


class DkimKeyError(ValueError):
    """A key file that cannot be used, with the reason."""


@dataclass(frozen=True, slots=True)
class DkimKey:
    type: KeyType
    private: bytes  # in the form dkimpy's sign() takes
    public_b64: str  # the p= value

    def txt_record(self) -> str:
        return f"v=DKIM1; k={self.type.value}; p={self.public_b64}"


def _from_private(key: object) -> DkimKey:
    if isinstance(key, rsa.RSAPrivateKey):
        pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
        pub = key.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
        return DkimKey(KeyType.RSA, pem, base64.b64encode(pub).decode())
    if isinstance(key, ed25519.Ed25519PrivateKey):
        seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())
        pub = key.public_key().public_bytes(serialization.Encoding.Raw,
                                            serialization.PublicFormat.Raw)
        return DkimKey(KeyType.ED25519, base64.b64encode(seed), base64.b64encode(pub).decode())
    raise DkimKeyError(f"unsupported key type {type(key).__name__}: use RSA or Ed25519")


def parse_key(data: bytes) -> DkimKey:
    """A PEM private key, or dkimpy's base64 Ed25519 seed."""
    text = data.strip()
    if text.startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(text, password=None)
        except (ValueError, TypeError) as e:
            raise DkimKeyError(f"not a usable unencrypted PEM private key: {e}") from None
        return _from_private(key)
    try:
        seed = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise DkimKeyError("neither PEM nor a base64 Ed25519 seed") from None
    if len(seed) != 32:
        raise DkimKeyError(f"a base64 Ed25519 seed must be 32 bytes, this is {len(seed)}")
    return _from_private(ed25519.Ed25519PrivateKey.from_private_bytes(seed))


def load_key(path: str | Path) -> DkimKey:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise DkimKeyError(f"{path}: {e.strerror or e}") from None
    try:
        key = parse_key(data)
    except DkimKeyError as e:
        raise DkimKeyError(f"{path}: {e}") from None
    if key.type is KeyType.RSA:
        bits = serialization.load_pem_private_key(key.private, None).key_size  # type: ignore[union-attr]
        if bits < 1024:
            raise DkimKeyError(f"{path}: RSA key of {bits} bits; RFC 8301 requires 1024 or more")
    return key


def generate(key_type: KeyType, bits: int = 2048) -> tuple[bytes, DkimKey]:
    """A new key: (PEM to write, the loaded key)."""
    priv: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if key_type is KeyType.RSA:
        priv = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        pem = priv.private_bytes(serialization.Encoding.PEM,
                                 serialization.PrivateFormat.TraditionalOpenSSL,
                                 serialization.NoEncryption())
    else:
        priv = ed25519.Ed25519PrivateKey.generate()
        pem = priv.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    return pem, _from_private(priv)


def write_private(path: Path, pem: bytes) -> None:
    """Create ``path`` readable by its owner only; never overwrite an existing key."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)


def zone_line(selector: str, domain: str, key: DkimKey) -> str:
    """The TXT record as a zone-file line, split into 255-byte strings (RFC 1035)."""
    record = key.txt_record()
    chunks = [record[i:i + 255] for i in range(0, len(record), 255)]
    quoted = " ".join(f'"{c}"' for c in chunks)
    return f"{selector}._domainkey.{domain.rstrip('.')}. IN TXT ( {quoted} )"
