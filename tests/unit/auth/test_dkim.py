"""DKIM verification and signing (RFC 6376, RFC 8463) against keys served by a real DNS."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import pytest

from builtin_plugins.auth.config import AuthConfig, SigningKey
from builtin_plugins.auth.dkim_sign import DkimSignPlugin, Signer, header_list, sign_message
from builtin_plugins.auth.dkim_verify import (
    DkimResult,
    SignatureResult,
    dkim_tags,
    summary,
    verify_dkim,
)
from builtin_plugins.auth.keys import DkimKey, DkimKeyError, KeyType, generate, load_key
from elemta_core.dns import SyncResolver
from elemta_core.hooks.types import HeaderChange, HeaderOp
from elemta_core.message.message import Message
from elemta_core.plugins.api import PluginServices
from tests.support.dns_server import ZoneServer

MSG = (b"From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: hello\r\n"
       b"Date: Wed, 25 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@example.org>\r\n\r\n"
       b"Hello Bob,\r\n\r\nsee you.\r\n")

RSA = generate(KeyType.RSA, 1024)[1]
ED = generate(KeyType.ED25519)[1]


def publish(zone: ZoneServer, selector: str, key: DkimKey, extra: str = "",
            domain: str = "example.org") -> None:
    zone.txt(f"{selector}._domainkey.{domain}", key.txt_record() + extra)


def sign(raw: bytes = MSG, *signers: Signer, canon: str = "relaxed/relaxed",
         headers: list[bytes] | None = None, **kw: object) -> bytes:
    msg = Message(raw)
    hl = headers or header_list(msg, ["from", "to", "subject", "date"], ["from"])
    vals = sign_message(msg, list(signers), hl, canon)
    return msg.with_changes([HeaderChange(HeaderOp.ADD, "DKIM-Signature", v)
                             for v in reversed(vals)]).raw


async def verify(sync: SyncResolver, raw: bytes) -> list[SignatureResult]:
    return await asyncio.to_thread(verify_dkim, raw, sync, 10, 1024)


@pytest.mark.parametrize("key", [RSA, ED], ids=["rsa", "ed25519"])
async def test_both_key_types_pass(zone: ZoneServer, sync: SyncResolver, key: DkimKey) -> None:
    publish(zone, "s1", key)
    [res] = await verify(sync, sign(MSG, Signer("example.org", "s1", key)))
    assert res.result is DkimResult.PASS, res
    assert res.algorithm == key.type.algorithm.decode() and res.domain == "example.org"


async def test_dual_signature_each_verified(zone: ZoneServer, sync: SyncResolver) -> None:
    publish(zone, "rsa", RSA)
    publish(zone, "ed", ED)
    raw = sign(MSG, Signer("example.org", "rsa", RSA), Signer("example.org", "ed", ED))
    res = await verify(sync, raw)
    assert [r.selector for r in res] == ["rsa", "ed"]
    assert all(r.result is DkimResult.PASS for r in res)
    tags = dkim_tags(res)
    assert tags["dkim.result"] == "pass" and tags["dkim.pass_domains"] == "example.org"
    assert tags["authres.dkim"].count("dkim=pass") == 2


async def test_modified_body_and_header_fail(zone: ZoneServer, sync: SyncResolver) -> None:
    publish(zone, "s1", RSA)
    raw = sign(MSG, Signer("example.org", "s1", RSA))
    [body] = await verify(sync, raw.replace(b"see you", b"pay me"))
    [head] = await verify(sync, raw.replace(b"Subject: hello", b"Subject: urgent"))
    assert body.result is DkimResult.FAIL and "body hash" in body.reason
    assert head.result is DkimResult.FAIL


async def test_oversigned_header_cannot_be_added(zone: ZoneServer, sync: SyncResolver) -> None:
    publish(zone, "s1", RSA)
    raw = sign(MSG, Signer("example.org", "s1", RSA))
    added = raw.replace(b"To: bob", b"From: mallory@evil.test\r\nTo: bob")
    assert (await verify(sync, added))[0].result is DkimResult.FAIL


@pytest.mark.parametrize("canon", ["relaxed/simple", "relaxed/relaxed"])
async def test_canonicalisations(zone: ZoneServer, sync: SyncResolver, canon: str) -> None:
    publish(zone, "s1", RSA)
    raw = sign(MSG, Signer("example.org", "s1", RSA), canon=canon)
    assert (await verify(sync, raw))[0].result is DkimResult.PASS
    spaced = raw.replace(b"Hello Bob,", b"Hello   Bob,")
    expect = DkimResult.PASS if canon.endswith("relaxed") else DkimResult.FAIL
    assert (await verify(sync, spaced))[0].result is expect


async def test_simple_simple_signature_from_dkimpy(zone: ZoneServer, sync: SyncResolver) -> None:
    import dkim

    publish(zone, "s1", RSA)
    line = dkim.DKIM(MSG).sign(b"s1", b"example.org", RSA.private,
                               canonicalize=(b"simple", b"simple"),
                               include_headers=[b"from", b"subject"])
    raw = line + MSG
    assert (await verify(sync, raw))[0].result is DkimResult.PASS
    assert (await verify(sync, raw.replace(b"Subject: hello", b"Subject:  hello")))[0].result \
        is DkimResult.FAIL


async def test_length_tag_allows_appended_text(zone: ZoneServer, sync: SyncResolver) -> None:
    import dkim

    publish(zone, "s1", RSA)
    line = dkim.DKIM(MSG).sign(b"s1", b"example.org", RSA.private,
                               include_headers=[b"from"], length=True)
    raw = line + MSG + b"-- \r\nfooter added by a list\r\n"
    res = (await verify(sync, raw))[0]
    assert res.result is DkimResult.PASS


async def test_copied_headers_tag_is_accepted(zone: ZoneServer, sync: SyncResolver) -> None:
    """z= (copied header fields, RFC 6376 §3.5) is diagnostic: a signature with it verifies."""
    import hashlib

    import dkim
    from dkim.crypto import parse_pem_private_key

    publish(zone, "s1", RSA)
    d = dkim.DKIM(MSG)
    d.hasher = hashlib.sha256
    canon = dkim.CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
    bh = base64.b64encode(hashlib.sha256(canon.canonicalize_body(d.body)).digest())
    fields = [(b"v", b"1"), (b"a", b"rsa-sha256"), (b"c", b"relaxed/relaxed"),
              (b"d", b"example.org"), (b"s", b"s1"),
              (b"z", b"From:Alice=20<alice@example.org>|Subject:hello"),
              (b"h", b"from:subject"), (b"bh", bh), (b"b", b"")]
    value = d.gen_header(fields, [b"from", b"subject"], canon, b"DKIM-Signature",
                         parse_pem_private_key(RSA.private))
    raw = b"DKIM-Signature:" + value + MSG
    assert b"z=From:Alice=20" in raw
    assert (await verify(sync, raw))[0].result is DkimResult.PASS
    changed = raw.replace(b"Subject: hello", b"Subject: bye")
    assert (await verify(sync, changed))[0].result is DkimResult.FAIL


@pytest.mark.parametrize("extra, reason", [
    ("; t=s", "t=s"),
    ("; h=sha1", "h="),
])
async def test_key_flags_are_enforced(zone: ZoneServer, sync: SyncResolver, extra: str,
                                      reason: str) -> None:
    import dkim

    publish(zone, "s1", RSA, extra)
    line = dkim.DKIM(MSG).sign(b"s1", b"example.org", RSA.private,
                               identity=b"alice@sub.example.org", include_headers=[b"from"])
    res = (await verify(sync, line + MSG))[0]
    assert res.result is DkimResult.PERMERROR and reason in res.reason


async def test_key_h_listing_sha256_and_t_s_with_exact_identity_pass(
        zone: ZoneServer, sync: SyncResolver) -> None:
    publish(zone, "s1", RSA, "; h=sha1:sha256; t=s")
    assert (await verify(sync, sign(MSG, Signer("example.org", "s1", RSA))))[0].result \
        is DkimResult.PASS


async def test_key_for_email_among_services_passes(zone: ZoneServer,
                                                  sync: SyncResolver) -> None:
    publish(zone, "s1", RSA, "; s=tlsrpt:email")
    assert (await verify(sync, sign(MSG, Signer("example.org", "s1", RSA))))[0].result \
        is DkimResult.PASS


async def test_testing_flag_is_reported(zone: ZoneServer, sync: SyncResolver) -> None:
    publish(zone, "s1", ED, "; t=y")
    res = (await verify(sync, sign(MSG, Signer("example.org", "s1", ED))))[0]
    assert res.result is DkimResult.PASS and res.testing
    assert "testing" in res.resinfo().render()


async def test_key_type_must_match_algorithm(zone: ZoneServer, sync: SyncResolver) -> None:
    zone.txt("s1._domainkey.example.org", f"v=DKIM1; k=ed25519; p={ED.public_b64}")
    raw = sign(MSG, Signer("example.org", "s1", RSA))
    res = (await verify(sync, raw))[0]
    assert res.result in (DkimResult.PERMERROR, DkimResult.FAIL)


@pytest.mark.parametrize("record, reason", [
    ("v=DKIM1; k=rsa; p=", "revoked"),
    ("v=DKIM1; p", "malformed"),
    ("v=DKIM1; k=rsa; p=!!!notbase64", ""),
    ("v=DKIM2; p=abc", ""),
    ("v=DKIM1; k=dsa; p=abc", ""),
    (f"v=DKIM1; s=tlsrpt; p={RSA.public_b64}", "s=tlsrpt"),
])
async def test_bad_key_records_are_permerror(zone: ZoneServer, sync: SyncResolver, record: str,
                                             reason: str) -> None:
    zone.txt("s1._domainkey.example.org", record)
    res = (await verify(sync, sign(MSG, Signer("example.org", "s1", RSA))))[0]
    assert res.result is DkimResult.PERMERROR, res
    assert reason in res.reason


async def test_missing_key_is_permerror(sync: SyncResolver) -> None:
    res = (await verify(sync, sign(MSG, Signer("example.org", "s1", RSA))))[0]
    assert res.result is DkimResult.PERMERROR and "no key" in res.reason


async def test_servfail_and_timeout_are_temperror(zone: ZoneServer, sync: SyncResolver) -> None:
    zone.servfail.add("s1._domainkey.example.org")
    zone.silent.add("s2._domainkey.example.org")
    raw = sign(MSG, Signer("example.org", "s1", RSA), Signer("example.org", "s2", RSA))
    res = await verify(sync, raw)
    assert [r.result for r in res] == [DkimResult.TEMPERROR, DkimResult.TEMPERROR]
    assert summary(res) is DkimResult.TEMPERROR


async def test_short_rsa_key_is_refused(zone: ZoneServer, sync: SyncResolver) -> None:
    publish(zone, "s1", RSA)  # 1024 bits, under a 2048-bit minimum
    raw = sign(MSG, Signer("example.org", "s1", RSA))
    res = (await asyncio.to_thread(verify_dkim, raw, sync, 10, 2048))[0]
    assert res.result is DkimResult.PERMERROR and "too small" in res.reason


@pytest.mark.parametrize("header", [
    b"DKIM-Signature: garbage\r\n",
    b"DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=s1; h=from; bh=x; b=y\r\n",
    b"DKIM-Signature: v=1; a=rsa-sha512; d=example.org; s=s1; h=from; bh=AA==; b=AA==\r\n",
    b"DKIM-Signature: v=1; a=rsa-sha256; d=; s=; h=from; bh=AA==; b=AA==\r\n",
    b"DKIM-Signature: v=1; v=1; a=rsa-sha256\r\n",
    b"DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=s1; h=subject; bh=AA==; b=AA==\r\n",
    (b"DKIM-Signature: v=1; a=rsa-sha256; d=example.org; i=@evil.test; s=s1; h=from; "
     b"bh=AA==; b=AA==\r\n"),
])
async def test_malformed_signatures_are_permerror(zone: ZoneServer, sync: SyncResolver,
                                                  header: bytes) -> None:
    publish(zone, "s1", RSA)
    res = await verify(sync, header + MSG)
    assert len(res) == 1 and res[0].result in (DkimResult.PERMERROR, DkimResult.FAIL), res


async def test_unsigned_and_garbage_messages(sync: SyncResolver) -> None:
    assert await verify(sync, MSG) == []
    assert summary([]) is DkimResult.NONE
    for junk in (b"", b"\r\n\r\n", b"\x00\xff" * 100, b"no headers at all"):
        await verify(sync, junk)  # never raises


async def test_signature_count_is_bounded(zone: ZoneServer, sync: SyncResolver) -> None:
    publish(zone, "s1", ED)
    raw = sign(MSG, *[Signer("example.org", "s1", ED)] * 15)
    assert len(await asyncio.to_thread(verify_dkim, raw, sync, 10, 1024)) == 10


# -- signing ---------------------------------------------------------------------------------

def test_header_list_oversigns() -> None:
    msg = Message(b"From: a@example.org\r\nTo: x@y.test\r\nTo: z@y.test\r\n\r\nhi\r\n")
    assert header_list(msg, ["from", "to", "subject", "cc"], ["from", "subject"]) == [
        b"from", b"from", b"to", b"to", b"subject"]


def test_key_files(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pkcs8 = rsa.generate_private_key(public_exponent=65537, key_size=1024).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    (tmp_path / "rsa8.pem").write_bytes(pkcs8)
    assert load_key(tmp_path / "rsa8.pem").private.startswith(b"-----BEGIN RSA PRIVATE KEY")
    seed = base64.b64encode(bytes(range(32)))
    (tmp_path / "ed.seed").write_bytes(seed + b"\n")
    assert load_key(tmp_path / "ed.seed").type is KeyType.ED25519
    for name, data in (("junk", b"hello"), ("short", base64.b64encode(b"x" * 16)),
                       ("pem", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----")):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DkimKeyError):
            load_key(tmp_path / name)
    with pytest.raises(DkimKeyError, match="missing"):
        load_key(tmp_path / "missing")


def test_keygen_writes_private_and_prints_record(tmp_path: Path) -> None:
    line = DkimSignPlugin.keygen(tmp_path / "k.pem", "example.org", "s1", "ed25519")
    assert line.startswith('s1._domainkey.example.org. IN TXT ( "v=DKIM1; k=ed25519; p=')
    assert (tmp_path / "k.pem").stat().st_mode & 0o777 == 0o600
    with pytest.raises(FileExistsError):
        DkimSignPlugin.keygen(tmp_path / "k.pem", "example.org", "s1", "rsa")
    rsa_line = DkimSignPlugin.keygen(tmp_path / "r.pem", "example.org", "s2", "rsa")
    assert rsa_line.count('"') >= 4  # a 2048-bit key's record is split into 255-byte strings


async def test_signer_picks_the_from_domain_or_its_parent(tmp_path: Path) -> None:
    for name, kt in (("a.pem", "rsa"), ("b.pem", "ed25519")):
        DkimSignPlugin.keygen(tmp_path / name, "example.org", name[0], kt)
    cfg = AuthConfig(dkim_keys=[SigningKey("example.org", "a", str(tmp_path / "a.pem")),
                                SigningKey("example.org", "b", str(tmp_path / "b.pem"))])
    plugin = DkimSignPlugin(cfg, PluginServices("mx.test", tmp_path))
    await plugin.start()
    try:
        assert [s.selector for s in plugin.signers_for("news.example.org")] == ["a", "b"]
        assert plugin.signers_for("example.net") == []
    finally:
        await plugin.stop()


async def test_signer_refuses_a_bad_key_at_start(tmp_path: Path) -> None:
    (tmp_path / "bad.pem").write_text("nope")
    cfg = AuthConfig(dkim_keys=[SigningKey("example.org", "a", str(tmp_path / "bad.pem"))])
    with pytest.raises(RuntimeError, match="example.org/a"):
        await DkimSignPlugin(cfg, PluginServices("mx.test", tmp_path)).start()
