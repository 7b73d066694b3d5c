"""The blocking facades: lookups from worker threads answered on the loop's resolver."""

from __future__ import annotations

import asyncio

import pytest

from elemta_core.dns import (
    CachedLookups,
    DnsConfig,
    DnsStatus,
    DnsTemporaryError,
    NotCached,
    Resolver,
    SyncResolver,
    dkim_txt_lookup,
    spf_lookup,
)
from tests.support.dns_server import ZoneServer


@pytest.fixture
def zone():
    with ZoneServer() as z:
        yield z


async def _sync(z: ZoneServer) -> SyncResolver:
    r = Resolver(DnsConfig(nameservers=[z.address], timeout=0.3, lifetime=0.5))
    s = SyncResolver(r, asyncio.get_running_loop())
    await asyncio.sleep(0)  # let it note the loop thread
    return s


async def test_query_from_a_thread_while_the_loop_runs(zone: ZoneServer) -> None:
    zone.txt("t.example.org", "hello")
    s = await _sync(zone)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    t = asyncio.create_task(tick())
    ans = await asyncio.to_thread(s.query, "t.example.org", "TXT")
    t.cancel()
    assert ans.records == (b"hello",) and ticks > 0


async def test_calling_on_the_loop_thread_is_refused(zone: ZoneServer) -> None:
    s = await _sync(zone)
    with pytest.raises(RuntimeError, match="deadlock"):
        s.query("t.example.org", "TXT")


async def test_dkim_lookup_shapes(zone: ZoneServer) -> None:
    zone.txt("s._domainkey.example.org", "v=DKIM1; p=abc")
    zone.servfail.add("bad._domainkey.example.org")
    f = dkim_txt_lookup(await _sync(zone))
    assert await asyncio.to_thread(f, b"s._domainkey.example.org.", timeout=5) == b"v=DKIM1; p=abc"
    assert await asyncio.to_thread(f, b"none._domainkey.example.org.") is None
    assert await asyncio.to_thread(f, b"._domainkey..") is None
    with pytest.raises(DnsTemporaryError):
        await asyncio.to_thread(f, b"bad._domainkey.example.org.")


async def test_spf_lookup_shapes(zone: ZoneServer) -> None:
    zone.txt("example.org", "v=spf1 mx -all").mx("example.org", "mx.example.org")
    zone.silent.add("slow.example.org")
    f = spf_lookup(await _sync(zone))
    assert await asyncio.to_thread(f, "example.org", "TXT") == [
        (("example.org", "TXT"), (b"v=spf1 mx -all",))]
    assert await asyncio.to_thread(f, "example.org", "MX") == [
        (("example.org", "MX"), (10, "mx.example.org"))]
    assert await asyncio.to_thread(f, "example.org", "A") == []
    with pytest.raises(DnsTemporaryError):
        await asyncio.to_thread(f, "slow.example.org", "TXT")


async def test_a_stalled_loop_answer_becomes_a_temporary_error(zone: ZoneServer) -> None:
    zone.silent.add("slow.example.org")
    s = await _sync(zone)
    ans = await asyncio.to_thread(s.query, "slow.example.org", "TXT")
    assert ans.status is DnsStatus.TEMPFAIL


async def test_cache_only_lookups_answer_known_names_and_flag_a_miss(zone: ZoneServer) -> None:
    zone.txt("t.example.org", "hello")
    r = Resolver(DnsConfig(nameservers=[zone.address], timeout=0.3, lifetime=0.5))
    cached = CachedLookups(r)
    with pytest.raises(NotCached):
        cached.query("t.example.org", "TXT")  # on the loop thread: never waits
    assert cached.missed
    await r.query("t.example.org", "TXT")
    again = CachedLookups(r)
    assert again.query("T.Example.org.", "TXT").records == (b"hello",)
    assert not again.missed
    assert dkim_txt_lookup(again)(b"t.example.org.") == b"hello"
    assert spf_lookup(again)("t.example.org", "TXT") == [(("t.example.org", "TXT"), (b"hello",))]
