"""ARC (RFC 8617): sealing and validating chains of several hops, and broken chains."""

from __future__ import annotations

import asyncio

from builtin_plugins.auth.arc import ArcCheck, ArcResult, seal, verify_arc
from builtin_plugins.auth.keys import KeyType, generate
from elemta_core.dns import SyncResolver
from elemta_core.hooks.types import HeaderChange, HeaderOp
from elemta_core.message.message import Message
from tests.support.dns_server import ZoneServer

KEY = generate(KeyType.RSA, 1024)[1]
MSG = (b"From: alice@example.org\r\nTo: list@example.net\r\nSubject: hi\r\n"
       b"Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n\r\nhello\r\n")


def hop(raw: bytes, authserv: str, results: str, domain: str) -> bytes:
    m = Message(raw).with_changes([HeaderChange(HeaderOp.ADD, "Authentication-Results",
                                                f"{authserv}; {results}")])
    return m.with_changes(seal(m, "arc", domain, KEY, authserv)).raw


async def verify(sync: SyncResolver, raw: bytes) -> ArcCheck:
    return await asyncio.to_thread(verify_arc, raw, sync, 50, 1024)


async def test_no_chain(sync: SyncResolver) -> None:
    assert (await verify(sync, MSG)).cv is ArcResult.NONE


async def test_three_hops_validate(zone: ZoneServer, sync: SyncResolver) -> None:
    for d in ("one.test", "two.test", "three.test"):
        zone.txt(f"arc._domainkey.{d}", KEY.txt_record())
    raw = hop(MSG, "mx.one.test", "spf=pass smtp.mailfrom=example.org", "one.test")
    assert (await verify(sync, raw)).cv is ArcResult.PASS
    raw = hop(raw, "mx.two.test", "arc=pass (i=1)", "two.test")
    raw = hop(raw, "mx.three.test", "arc=pass (i=2)", "three.test")
    chk = await verify(sync, raw)
    assert chk.cv is ArcResult.PASS and chk.instances == 3
    assert [s["instance"] for s in chk.sets] == [3, 2, 1]
    assert b"cv=pass" in raw and b"i=3" in raw


async def test_modified_after_sealing_fails(zone: ZoneServer, sync: SyncResolver) -> None:
    zone.txt("arc._domainkey.one.test", KEY.txt_record())
    raw = hop(MSG, "mx.one.test", "spf=pass smtp.mailfrom=example.org", "one.test")
    chk = await verify(sync, raw.replace(b"hello", b"HELLO"))
    assert chk.cv is ArcResult.FAIL


async def test_missing_set_and_wrong_cv_fail(zone: ZoneServer, sync: SyncResolver) -> None:
    for d in ("one.test", "two.test"):
        zone.txt(f"arc._domainkey.{d}", KEY.txt_record())
    raw = hop(MSG, "mx.one.test", "spf=pass smtp.mailfrom=example.org", "one.test")
    raw2 = hop(raw, "mx.two.test", "arc=pass", "two.test")
    # drop instance 1's ARC-Seal: the chain has a hole
    lines = raw2.split(b"\r\n")
    hole = b"\r\n".join(ln for ln in lines if not (ln.startswith(b"ARC-Seal:") and b"i=1" in ln))
    assert (await verify(sync, hole)).cv is ArcResult.FAIL
    # the first hop's seal claiming cv=pass is invalid
    bad = raw.replace(b"cv=none", b"cv=pass")
    assert (await verify(sync, bad)).cv is ArcResult.FAIL


async def test_instance_limit(sync: SyncResolver) -> None:
    raw = (b"ARC-Seal: i=51; cv=pass; a=rsa-sha256; d=x.test; s=a; b=AA==\r\n"
           b"ARC-Message-Signature: i=51; a=rsa-sha256; d=x.test; s=a; h=from; bh=AA==; b=AA==\r\n"
           b"ARC-Authentication-Results: i=51; x.test; none\r\n" + MSG)
    chk = await verify(sync, raw)
    assert chk.cv is ArcResult.FAIL and "limit of 50" in chk.reason


async def test_key_lookup_failure_is_temperror(zone: ZoneServer, sync: SyncResolver) -> None:
    zone.servfail.add("arc._domainkey.one.test")
    raw = hop(MSG, "mx.one.test", "spf=pass smtp.mailfrom=example.org", "one.test")
    assert (await verify(sync, raw)).cv is ArcResult.TEMPERROR


async def test_garbage_arc_headers_fail_without_crashing(sync: SyncResolver) -> None:
    for junk in (b"ARC-Seal: i=1; garbage\r\n", b"ARC-Seal: i=x\r\n",
                 b"ARC-Message-Signature: i=1\r\nARC-Seal: i=1\r\nARC-Authentication-Results: i=1\r\n"):
        chk = await verify(sync, junk + MSG)
        assert chk.cv in (ArcResult.FAIL, ArcResult.NONE)
