"""OpenSSL RSA and memoised key records for dkimpy: the same verdicts as dkimpy's own code."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import dkim
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from builtin_plugins.auth import dkim_crypto
from builtin_plugins.auth.dkim_crypto import OpenSSLRsaKey, openssl_key
from builtin_plugins.auth.dkim_sign import Signer, header_list, sign_message
from builtin_plugins.auth.dkim_verify import verify_dkim
from builtin_plugins.auth.keys import DkimKey, KeyType, generate
from elemta_core.hooks.types import HeaderChange, HeaderOp
from elemta_core.message.message import Message

ORIGINAL_VERIFY: Any = dkim_crypto._original_verify
ORIGINAL_EVALUATE: Any = dkim_crypto._original_evaluate

MSG = (b"From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: hello\r\n"
       b"Date: Wed, 25 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@example.org>\r\n\r\n"
       b"Hello Bob,\r\n\r\nsee you.\r\n")


def _private(bits: int, exponent: int = 65537) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=exponent, key_size=bits)


KEYS = {bits: _private(bits) for bits in (1024, 2048, 3072)}


def _digest(data: bytes, name: str = "sha256") -> Any:
    return dkim.HashThrough(hashlib.new(name, data))


def _signature_variants(sig: bytes, n: int) -> Iterator[tuple[str, bytes]]:
    s = int.from_bytes(sig, "big")
    length = (n.bit_length() + 7) // 8
    yield "good", sig
    for i in (0, 1, len(sig) // 2, len(sig) - 1):
        flipped = bytearray(sig)
        flipped[i] ^= 0x01
        yield f"bit {i}", bytes(flipped)
    yield "plus n", (s + n).to_bytes(length + 1, "big")
    yield "plus 5n", (s + 5 * n).to_bytes(length + 2, "big")
    yield "leading zeros", b"\x00\x00" + sig
    yield "truncated", sig[1:]
    yield "one byte more", sig + b"\x00"
    yield "empty", b""
    yield "zero", bytes(length)
    yield "one", (1).to_bytes(length, "big")
    yield "n minus one", (n - 1).to_bytes(length, "big")
    yield "n", n.to_bytes(length, "big")


@pytest.mark.parametrize("bits", sorted(KEYS))
def test_openssl_verdict_is_dkimpys(bits: int) -> None:
    priv = KEYS[bits]
    nums = priv.public_key().public_numbers()
    key = openssl_key(nums.n, nums.e)
    assert isinstance(key, OpenSSLRsaKey)
    plain = {"modulus": nums.n, "publicExponent": nums.e}
    data = b"the signed header hash input"
    sig = priv.sign(data, padding.PKCS1v15(), hashes.SHA256())
    other = KEYS[1024 if bits != 1024 else 2048].sign(data, padding.PKCS1v15(), hashes.SHA256())
    cases = [*_signature_variants(sig, nums.n), ("other key", other)]
    for what, s in cases:
        for content in (data, data + b"!"):
            want = ORIGINAL_VERIFY(_digest(content), s, plain)
            got = dkim_crypto.rsassa_pkcs1_v1_5_verify(_digest(content), s, key)
            assert got is want, (what, content)
    assert dkim_crypto.rsassa_pkcs1_v1_5_verify(_digest(data), sig, key) is True


def test_sha1_and_plain_keys_keep_dkimpys_arithmetic() -> None:
    priv = KEYS[1024]
    nums = priv.public_key().public_numbers()
    key = openssl_key(nums.n, nums.e)
    assert key is not None
    data = b"x"
    sig = priv.sign(data, padding.PKCS1v15(), hashes.SHA1())
    assert dkim_crypto.rsassa_pkcs1_v1_5_verify(_digest(data, "sha1"), sig, key) is True
    assert dkim_crypto.rsassa_pkcs1_v1_5_verify(_digest(b"y", "sha1"), sig, key) is False
    plain = {"modulus": nums.n, "publicExponent": nums.e}
    sig256 = priv.sign(data, padding.PKCS1v15(), hashes.SHA256())
    assert dkim_crypto.rsassa_pkcs1_v1_5_verify(_digest(data), sig256, plain) is True


@pytest.mark.parametrize("n, e", [
    (KEYS[1024].public_key().public_numbers().n >> 600, 65537),  # under 1024 bits
    (KEYS[2048].public_key().public_numbers().n + 1, 65537),  # even modulus
    (KEYS[2048].public_key().public_numbers().n, 65536),  # even exponent
    (KEYS[2048].public_key().public_numbers().n, 1),
    (KEYS[2048].public_key().public_numbers().n, (1 << 65) + 1),  # over 64 bits
    (KEYS[2048].public_key().public_numbers().n, KEYS[2048].public_key().public_numbers().n),
], ids=["small", "even-n", "even-e", "e1", "huge-e", "e-is-n"])
def test_keys_openssl_could_judge_differently_stay_with_dkimpy(n: int, e: int) -> None:
    assert openssl_key(n, e) is None


def _record(priv: rsa.RSAPrivateKey | rsa.RSAPublicKey, extra: str = "") -> bytes:
    pub = priv.public_key() if isinstance(priv, rsa.RSAPrivateKey) else priv
    der = pub.public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"v=DKIM1; k=rsa;{extra} p={base64.b64encode(der).decode()}".encode()


def test_key_records_are_parsed_once_and_errors_raised_afresh() -> None:
    rec = _record(KEYS[2048])
    first = dkim.evaluate_pk(b"s._domainkey.example.org.", rec)
    again = dkim.evaluate_pk(b"other._domainkey.example.net.", rec)
    assert first is again  # one parse, whatever name it was published at
    pk, keysize, ktag, seqtlsrpt = first
    assert isinstance(pk, OpenSSLRsaKey) and keysize == 2048 and ktag == b"rsa"
    assert (dict(pk), keysize, ktag, seqtlsrpt) == ORIGINAL_EVALUATE(b"n", rec)
    for bad in (b"v=DKIM1; p=AAAA", b"v=DKIM2; p=" + rec.rpartition(b"p=")[2], b"k=dsa; p=x"):
        for _ in range(2):
            with pytest.raises(Exception) as ours:
                dkim.evaluate_pk(b"n", bad)
            with pytest.raises(Exception) as theirs:
                ORIGINAL_EVALUATE(b"n", bad)
            assert type(ours.value) is type(theirs.value)
            assert str(ours.value) == str(theirs.value)
    with pytest.raises(dkim.KeyFormatError, match="missing public key: key.example"):
        dkim.evaluate_pk("key.example", b"")


def test_small_rsa_keys_keep_the_plain_dkimpy_key() -> None:
    small = rsa.RSAPublicNumbers(65537, (1 << 767) | 0xFFF1).public_key()  # 768 bits
    pk = dkim.evaluate_pk(b"n", _record(small))[0]
    assert type(pk) is dict


# -- whole verifications, with and without the wrappers --------------------------------------

RSA_KEY = generate(KeyType.RSA, 2048)[1]
RSA_OTHER = generate(KeyType.RSA, 2048)[1]
ED_KEY = generate(KeyType.ED25519)[1]
ED_OTHER = generate(KeyType.ED25519)[1]


def _signed(key: DkimKey, raw: bytes = MSG, canon: str = "relaxed/relaxed") -> bytes:
    msg = Message(raw)
    [sig] = sign_message(msg, [Signer("example.org", "s1", key)],
                         header_list(msg, ["from", "to", "subject", "date"], ["from"]), canon)
    return msg.with_changes([HeaderChange(HeaderOp.ADD, "DKIM-Signature", sig)]).raw


def _messages(key: DkimKey) -> dict[str, bytes]:
    good = _signed(key)
    simple = _signed(key, canon="relaxed/simple")
    head, _, body = good.partition(b"\r\n\r\n")
    b_at = good.index(b"; b=") + 4
    b_end = good.index(b"\r\nFrom:")
    return {
        "good": good,
        "simple": simple,
        "body changed": head + b"\r\n\r\n" + body.replace(b"Bob", b"Rob"),
        "header changed": good.replace(b"Subject: hello", b"Subject: hullo"),
        "b= bit": good[:b_at + 10] + (b"A" if good[b_at + 10:b_at + 11] != b"A" else b"B")
        + good[b_at + 11:],
        "b= truncated": good[:b_at + 4] + good[b_end - 4:],
        "b= empty": good[:b_at] + good[b_end:],
    }


def _dnsfunc(record: str) -> Callable[..., bytes | None]:
    def lookup(name: str, timeout: float = 5) -> bytes | None:
        return record.encode()
    return lookup


@pytest.mark.parametrize("signer, published", [
    (RSA_KEY, RSA_KEY), (RSA_KEY, RSA_OTHER), (ED_KEY, ED_KEY), (ED_KEY, ED_OTHER),
    (RSA_KEY, ED_KEY), (ED_KEY, RSA_KEY),
], ids=["rsa", "rsa-wrong-key", "ed25519", "ed25519-wrong-key", "rsa-sig-ed-key",
        "ed-sig-rsa-key"])
def test_verify_dkim_results_are_dkimpys(monkeypatch: pytest.MonkeyPatch, signer: DkimKey,
                                         published: DkimKey) -> None:
    lookup = _dnsfunc(published.txt_record())
    messages = _messages(signer)
    ours = {k: verify_dkim(raw, lookup) for k, raw in messages.items()}
    monkeypatch.setattr(dkim, "evaluate_pk", ORIGINAL_EVALUATE)
    monkeypatch.setattr(dkim, "RSASSA_PKCS1_v1_5_verify", ORIGINAL_VERIFY)
    theirs = {k: verify_dkim(raw, lookup) for k, raw in messages.items()}
    assert ours == theirs
    assert (ours["good"][0].result.value == "pass") is (signer is published)
    assert all(r[0].result.value != "pass" for k, r in ours.items() if k not in ("good", "simple"))


@pytest.mark.parametrize("record", [
    "v=DKIM1; p=", "v=DKIM1; k=rsa; p=AAAA", "v=DKIM1; s=tlsrpt; p=AAAA", "garbage",
    "v=DKIM1; h=sha1; p={p}", "v=DKIM1; s=tlsrpt:email; p={p}",
], ids=["revoked", "unusable", "not-email", "malformed", "hash", "services"])
def test_key_record_verdicts_stay_when_memoised(record: str) -> None:
    p = RSA_KEY.public_b64
    lookup = _dnsfunc(record.replace("{p}", p))
    raw = _signed(RSA_KEY)
    first, again = verify_dkim(raw, lookup), verify_dkim(raw, lookup)
    assert first == again and first[0].result.value in ("permerror", "pass")
    assert (first[0].result.value == "pass") is record.endswith("email; p={p}")
