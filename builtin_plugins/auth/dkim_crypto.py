"""dkimpy's verification with each key record parsed once and RSA checked by OpenSSL.

Most of the CPU a DKIM verification costs in dkimpy is not hashing: it parses the key
record's base64 DER with its own ASN.1 code for every message, and checks an RSA signature
with Python integers (``pow``, then byte-by-byte conversions of 2048-bit numbers). Two of
its module functions are the seam, wrapped by :func:`install` for the whole process:

- ``dkim.evaluate_pk`` (record text → key): memoised by the record's bytes. It is a pure
  function of that text (the DNS name appears only in the error for an empty record, which
  is not memoised), so every caller gets what dkimpy would compute, minus the parsing.
- ``dkim.RSASSA_PKCS1_v1_5_verify``, the one call dkimpy's verify path makes for RSA: for a
  key evaluated here it runs in OpenSSL (``cryptography``); any other key takes dkimpy's
  own arithmetic.

The verdict stays dkimpy's. dkimpy accepts a signature ``s`` when ``s**e mod n``, written
in exactly the modulus's length, equals the PKCS#1 v1.5 encoding of the digest. OpenSSL
accepts it under the same condition (it re-encodes the DigestInfo and compares the whole
block) but wants ``s < n`` in exactly that length, so ``s`` is first reduced modulo ``n``
and padded, which leaves ``s**e mod n`` unchanged. Keys OpenSSL could judge differently
keep dkimpy's path: under 1024 or over 16384 bits, an even modulus, an exponent that is
even, under 3, not under ``n`` or over 64 bits (OpenSSL refuses those for large moduli),
and every rsa-sha1 signature. Ed25519 keys are dkimpy's own (libsodium through PyNaCl):
memoising spares rebuilding the key object each time.
"""

from __future__ import annotations

import functools
from typing import Any

import dkim
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

#: How many distinct key records stay parsed (each a few hundred bytes and a key object).
KEY_CACHE_SIZE = 4096

_MIN_BITS, _MAX_BITS = 1024, 16384
_MAX_EXPONENT_BITS = 64
_PKCS1V15 = padding.PKCS1v15()
_SHA256 = Prehashed(hashes.SHA256())


class OpenSSLRsaKey(dict[str, int]):
    """dkimpy's RSA key (``{"modulus": n, "publicExponent": e}``) with OpenSSL's beside it.

    Still the dict dkimpy reads (its key-size check, its own verify if called directly).
    """

    __slots__ = ("_length", "_public")

    def __init__(self, modulus: int, exponent: int, public: rsa.RSAPublicKey) -> None:
        super().__init__(modulus=modulus, publicExponent=exponent)
        self._public = public
        self._length = (modulus.bit_length() + 7) // 8

    def verify(self, digest: Any, signature: bytes) -> bool:
        """dkimpy's ``RSASSA_PKCS1_v1_5_verify(digest, signature, self)``, in OpenSSL."""
        if digest.name.lower() != "sha256":
            return bool(_original_verify(digest, signature, self))
        s = int.from_bytes(signature, "big")
        if s >= self["modulus"]:
            s %= self["modulus"]
        try:
            self._public.verify(s.to_bytes(self._length, "big"), digest.digest(), _PKCS1V15,
                                _SHA256)
        except InvalidSignature:
            return False
        return True


def openssl_key(modulus: int, exponent: int) -> OpenSSLRsaKey | None:
    """The key for OpenSSL, or None where dkimpy's arithmetic must stay the judge."""
    if not _MIN_BITS <= modulus.bit_length() <= _MAX_BITS or not modulus & 1:
        return None
    if not 3 <= exponent < modulus or not exponent & 1 \
            or exponent.bit_length() > _MAX_EXPONENT_BITS:
        return None
    try:
        public = rsa.RSAPublicNumbers(exponent, modulus).public_key()
    except (ValueError, UnsupportedAlgorithm):
        return None
    return OpenSSLRsaKey(modulus, exponent, public)


_original_evaluate: Any = getattr(dkim.evaluate_pk, "__wrapped_dkimpy__", dkim.evaluate_pk)
_original_verify: Any = getattr(dkim.RSASSA_PKCS1_v1_5_verify, "__wrapped_dkimpy__",
                                dkim.RSASSA_PKCS1_v1_5_verify)


@functools.lru_cache(maxsize=KEY_CACHE_SIZE)
def _evaluate_record(record: bytes) -> tuple[Any, Any, Any, Any]:
    pk, keysize, ktag, seqtlsrpt = _original_evaluate(b"", record)
    if ktag == b"rsa" and type(pk) is dict:
        fast = openssl_key(pk["modulus"], pk["publicExponent"])
        if fast is not None:
            pk = fast
    return pk, keysize, ktag, seqtlsrpt


def evaluate_pk(name: Any, s: Any) -> tuple[Any, Any, Any, Any]:
    """``dkim.evaluate_pk``, memoised by the record (errors are raised afresh each time)."""
    if type(s) is not bytes or not s:  # None, empty (its error names the key), or str
        result: tuple[Any, Any, Any, Any] = _original_evaluate(name, s)
        return result
    return _evaluate_record(s)


def rsassa_pkcs1_v1_5_verify(digest: Any, signature: bytes, public_key: Any) -> bool:
    """``dkim.RSASSA_PKCS1_v1_5_verify``: OpenSSL for keys evaluated here, dkimpy otherwise."""
    if isinstance(public_key, OpenSSLRsaKey):
        return public_key.verify(digest, signature)
    return bool(_original_verify(digest, signature, public_key))


evaluate_pk.__wrapped_dkimpy__ = _original_evaluate  # type: ignore[attr-defined]
rsassa_pkcs1_v1_5_verify.__wrapped_dkimpy__ = _original_verify  # type: ignore[attr-defined]


def install() -> None:
    """Put both wrappers into dkimpy's module, for every verifier in the process (ARC's
    too). Idempotent; ``dkim_verify`` (which ``arc`` imports) calls it when imported."""
    dkim.evaluate_pk = evaluate_pk
    dkim.RSASSA_PKCS1_v1_5_verify = rsassa_pkcs1_v1_5_verify
