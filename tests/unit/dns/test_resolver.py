"""The shared resolver against a real DNS server on loopback: statuses, TCP, cache, limits."""

from __future__ import annotations

import asyncio
import time

import dns.name
import dns.rdataclass
import dns.rdatatype
import pytest

from elemta_core.config.errors import ConfigError
from elemta_core.config.schema import load_section
from elemta_core.dns import DnsConfig, DnsStatus, Resolver
from tests.support.dns_server import ZoneServer


@pytest.fixture
def zone():
    with ZoneServer(ttl=300) as z:
        yield z


def resolver(z: ZoneServer, **kw: object) -> Resolver:
    return Resolver(DnsConfig(nameservers=[z.address], timeout=0.3, lifetime=0.6, **kw))


async def test_answers_by_type(zone: ZoneServer) -> None:
    zone.txt("example.org", "v=spf1 -all", "").a("example.org", "192.0.2.1", "2001:db8::1")
    zone.mx("example.org", "mx.example.org", 5).ptr("192.0.2.1", "mail.example.org")
    r = resolver(zone)
    assert (await r.query("example.org", "TXT")).records == (b"v=spf1 -all",)
    assert (await r.query("EXAMPLE.org.", "A")).records == ("192.0.2.1",)
    assert (await r.query("example.org", "AAAA")).records == ("2001:db8::1",)
    assert (await r.query("example.org", "MX")).records == ((5, "mx.example.org"),)
    ptr = await r.query("1.2.0.192.in-addr.arpa", "PTR")
    assert ptr.records == ("mail.example.org",)


async def test_txt_strings_are_joined(zone: ZoneServer) -> None:
    zone.txt("split.example.org", "v=spf1 ", "ip4:192.0.2.0/24 -all")
    ans = await resolver(zone).query("split.example.org", "TXT")
    assert ans.records == (b"v=spf1 ip4:192.0.2.0/24 -all",)


async def test_nxdomain_and_nodata_are_told_apart(zone: ZoneServer) -> None:
    zone.a("host.sub.example.org", "192.0.2.2")
    r = resolver(zone)
    nodata = await r.query("host.sub.example.org", "TXT")
    empty_non_terminal = await r.query("sub.example.org", "A")
    nx = await r.query("absent.example.org", "A")
    assert nodata.status is DnsStatus.NODATA and nodata.void
    assert empty_non_terminal.status is DnsStatus.NODATA
    assert nx.status is DnsStatus.NXDOMAIN and nx.void and not nx.temporary


async def test_servfail_and_silence_are_temporary_and_bounded(zone: ZoneServer) -> None:
    zone.servfail.add("broken.example.org")
    zone.silent.add("slow.example.org")
    r = resolver(zone)
    assert (await r.query("broken.example.org", "TXT")).status is DnsStatus.TEMPFAIL
    t0 = time.monotonic()
    ans = await r.query("slow.example.org", "TXT")
    assert ans.status is DnsStatus.TEMPFAIL and "timed out" in ans.error
    assert time.monotonic() - t0 < 2.0


async def test_truncated_answers_retry_over_tcp(zone: ZoneServer) -> None:
    zone.txt("big.example.org", "v=spf1 " + " ".join(f"ip4:192.0.2.{i}" for i in range(150)))
    ans = await resolver(zone).query("big.example.org", "TXT")
    assert ans.ok and len(ans.records[0]) > 2000
    assert zone.tcp_queries == 1


async def test_invalid_names_are_not_asked(zone: ZoneServer) -> None:
    r = resolver(zone)
    for bad in ("a..example.org", "x" * 64 + ".org", ".".join(["abcdefghi"] * 30), ""):
        assert (await r.query(bad, "TXT")).status is DnsStatus.INVALID
    assert not zone.queries


async def test_cache_honours_ttl_and_can_be_off() -> None:
    with ZoneServer(ttl=1) as z:
        z.txt("c.example.org", "one")
        cached = resolver(z)
        for _ in range(3):
            await cached.query("c.example.org", "TXT")
        assert z.queries[("c.example.org", "TXT")] == 1
        await asyncio.sleep(1.1)
        await cached.query("c.example.org", "TXT")
        assert z.queries[("c.example.org", "TXT")] == 2  # expired after its TTL
        uncached = resolver(z, cache=False)
        for _ in range(3):
            await uncached.query("c.example.org", "TXT")
        assert z.queries[("c.example.org", "TXT")] == 5


async def test_negative_answers_are_cached(zone: ZoneServer) -> None:
    zone.a("x.example.org", "192.0.2.3")
    r = resolver(zone)
    for _ in range(3):
        assert (await r.query("nx.example.org", "TXT")).status is DnsStatus.NXDOMAIN
    assert zone.queries[("nx.example.org", "TXT")] == 1


async def test_unreachable_server_is_a_quick_temporary_error() -> None:
    r = Resolver(DnsConfig(nameservers=["127.0.0.1:9"], timeout=0.2, lifetime=0.5))
    t0 = time.monotonic()
    assert (await r.query("example.org", "TXT")).status is DnsStatus.TEMPFAIL
    assert time.monotonic() - t0 < 2.0


def test_system_resolver_is_the_default() -> None:
    r = Resolver()
    assert r.nameservers  # /etc/resolv.conf, or the fallback: never empty, never a crash


@pytest.mark.parametrize("content", [None, "", "# nothing\nsearch example.org\n",
                                     "nameserver not-an-address\n"])
async def test_unusable_system_config_is_not_fatal(tmp_path, content: str | None) -> None:
    conf = tmp_path / "resolv.conf"
    if content is not None:
        conf.write_text(content)
    r = Resolver(DnsConfig(timeout=0.2, lifetime=0.4), resolv_conf=str(conf))
    assert r.nameservers
    t0 = time.monotonic()
    ans = await r.query("example.org", "TXT")
    assert ans.status in (DnsStatus.TEMPFAIL, DnsStatus.NXDOMAIN, DnsStatus.OK)
    assert time.monotonic() - t0 < 2.0


def test_unsupported_type_is_a_programming_error(zone: ZoneServer) -> None:
    with pytest.raises(ValueError):
        asyncio.run(resolver(zone).query("example.org", "AXFR"))


@pytest.mark.parametrize("table, key", [
    ({"nameservers": ["dns.example:53"]}, "dns.nameservers[0]"),
    ({"nameservers": ["127.0.0.1:99999"]}, "dns.nameservers[0]"),
    ({"timeout": 0}, "dns.timeout"),
    ({"timeout": 5.0, "lifetime": 1.0}, "dns.timeout"),
    ({"cache": "yes"}, "dns.cache"),
    ({"servers": []}, "dns.servers"),
])
def test_config_errors_name_the_key(table: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_section(DnsConfig, table, "dns")
    assert e.value.key == key


def test_config_accepts_ports_and_v6() -> None:
    cfg = load_section(DnsConfig, {"nameservers": ["127.0.0.1:5353", "[::1]:53", "192.0.2.1"]},
                       "dns")
    assert cfg.servers() == [("127.0.0.1", 5353), ("::1", 53), ("192.0.2.1", 53)]


async def test_worker_threads_read_cached_answers_without_the_loop(zone: ZoneServer) -> None:
    import threading

    from elemta_core.dns.sync import SyncResolver

    zone.txt("w.example.org", "v=spf1 -all")
    r = resolver(zone)
    first = await r.query("w.example.org", "TXT")
    assert first.ok
    assert r.cached("W.example.org.", "txt") == first
    sync = SyncResolver(r, asyncio.get_running_loop())
    got: list[object] = []
    t = threading.Thread(target=lambda: got.append(sync.query("w.example.org", "TXT")))
    t.start()
    t.join(5)  # blocks the event loop: only the thread-safe cache can answer in time
    assert got == [first]
    r.flush()
    assert r.cached("w.example.org", "TXT") is None
    assert resolver(zone, cache=False).cached("w.example.org", "TXT") is None


async def test_negative_answers_are_readable_from_the_cache_too(zone: ZoneServer) -> None:
    zone.a("x.example.org", "192.0.2.3")
    r = resolver(zone)
    nx = await r.query("nx.example.org", "TXT")
    nodata = await r.query("x.example.org", "TXT")
    assert (nx.status, nodata.status) == (DnsStatus.NXDOMAIN, DnsStatus.NODATA)
    assert r.cached("NX.example.org.", "TXT") == nx and r.cached("x.example.org", "TXT") == nodata
    assert r.cached("x.example.org", "MX") is None  # never asked
    assert resolver(zone, cache=False).cached("nx.example.org", "TXT") is None
    uncached = resolver(zone, cache=False)
    await uncached.query("nx.example.org", "TXT")
    assert uncached.cached("nx.example.org", "TXT") is None
    r.flush()
    assert r.cached("nx.example.org", "TXT") is None


async def test_negative_answers_expire_with_dnspythons_cache(zone: ZoneServer) -> None:
    zone.a("x.example.org", "192.0.2.3")
    r = resolver(zone)
    await r.query("x.example.org", "TXT")
    cache = r._resolver.cache
    assert cache is not None
    entry = cache.get((dns.name.from_text("x.example.org."), dns.rdatatype.TXT,
                       dns.rdataclass.IN))
    assert entry is not None and r._answers[("x.example.org", "TXT")][0] == entry.expiration
