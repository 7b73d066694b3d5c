"""SPF (RFC 7208) through pyspf and the shared resolver: every result and every limit."""

from __future__ import annotations

import asyncio
import time

import pytest

from builtin_plugins.auth.spf import SpfCheck, SpfResult, check_spf
from elemta_core.dns import SyncResolver
from tests.support.dns_server import ZoneServer

IP = "192.0.2.10"


async def spf(sync: SyncResolver, sender: str = "alice@example.org", ip: str = IP,
              helo: str = "client.example.org") -> SpfCheck:
    return await asyncio.to_thread(check_spf, sync, ip, sender, helo, "mx.test", 5.0)


@pytest.mark.parametrize("record, result", [
    ("v=spf1 ip4:192.0.2.0/24 -all", SpfResult.PASS),
    ("v=spf1 ip4:198.51.100.0/24 -all", SpfResult.FAIL),
    ("v=spf1 ip4:198.51.100.0/24 ~all", SpfResult.SOFTFAIL),
    ("v=spf1 ?all", SpfResult.NEUTRAL),
    ("v=spf1 ip4:198.51.100.0/24", SpfResult.NEUTRAL),  # no match, no all: neutral
    ("v=spf1 ip4:192.0.2.0/33 -all", SpfResult.PERMERROR),  # bad CIDR
    ("v=spf1 moo -all", SpfResult.PERMERROR),  # unknown mechanism
    ("v=spf1 a mx -all", SpfResult.FAIL),
])
async def test_results(zone: ZoneServer, sync: SyncResolver, record: str,
                       result: SpfResult) -> None:
    zone.txt("example.org", record).a("example.org", "198.51.100.1")
    chk = await spf(sync)
    assert chk.result is result, chk
    assert chk.identity == "mailfrom" and chk.domain == "example.org"


async def test_none_without_a_record(zone: ZoneServer, sync: SyncResolver) -> None:
    zone.txt("example.org", "not spf")
    assert (await spf(sync)).result is SpfResult.NONE
    assert (await spf(sync, "bob@absent.example")).result is SpfResult.NONE


async def test_two_records_are_a_permerror(zone: ZoneServer, sync: SyncResolver) -> None:
    zone.txt("example.org", "v=spf1 -all").txt("example.org", "v=spf1 +all")
    assert (await spf(sync)).result is SpfResult.PERMERROR


async def test_servfail_and_timeout_are_temperror(zone: ZoneServer, sync: SyncResolver) -> None:
    zone.servfail.add("example.org")
    zone.silent.add("slow.example")
    assert (await spf(sync)).result is SpfResult.TEMPERROR
    t0 = time.monotonic()
    assert (await spf(sync, "x@slow.example")).result is SpfResult.TEMPERROR
    assert time.monotonic() - t0 < 3


async def test_include_mx_a_and_redirect(zone: ZoneServer, sync: SyncResolver) -> None:
    zone.txt("example.org", "v=spf1 include:_spf.example.net redirect=_spf.example.com")
    zone.txt("_spf.example.net", "v=spf1 mx -all").mx("_spf.example.net", "mx1.example.net")
    zone.a("mx1.example.net", "198.51.100.7")
    zone.txt("_spf.example.com", "v=spf1 a:out.example.com -all").a("out.example.com", IP)
    assert (await spf(sync)).result is SpfResult.PASS  # via redirect
    assert (await spf(sync, ip="198.51.100.7")).result is SpfResult.PASS  # via include + mx
    assert (await spf(sync, ip="203.0.113.1")).result is SpfResult.FAIL


async def test_ipv6_and_mapped_ipv4(zone: ZoneServer, sync: SyncResolver) -> None:
    zone.txt("example.org", "v=spf1 ip6:2001:db8::/32 ip4:192.0.2.0/24 -all")
    assert (await spf(sync, ip="2001:db8::5")).result is SpfResult.PASS
    assert (await spf(sync, ip="::ffff:192.0.2.9")).result is SpfResult.PASS
    assert (await spf(sync, ip="2001:db9::5")).result is SpfResult.FAIL


async def test_more_than_ten_lookups_is_a_permerror(zone: ZoneServer,
                                                    sync: SyncResolver) -> None:
    zone.txt("example.org", "v=spf1 " + " ".join(f"a:h{i}.example.org" for i in range(11))
             + " -all")
    for i in range(11):
        zone.a(f"h{i}.example.org", "198.51.100.1")
    chk = await spf(sync)
    assert chk.result is SpfResult.PERMERROR and "Too many DNS lookups" in chk.explanation


async def test_ten_lookups_are_allowed(zone: ZoneServer, sync: SyncResolver) -> None:
    zone.txt("example.org", "v=spf1 " + " ".join(f"a:h{i}.example.org" for i in range(9))
             + f" ip4:{IP} -all")
    for i in range(9):
        zone.a(f"h{i}.example.org", "198.51.100.1")
    assert (await spf(sync)).result is SpfResult.PASS


async def test_void_lookup_limit(zone: ZoneServer, sync: SyncResolver) -> None:
    zone.txt("example.org", "v=spf1 a:v1.example.org a:v2.example.org a:v3.example.org -all")
    chk = await spf(sync)
    assert chk.result is SpfResult.PERMERROR and "oid" in chk.explanation


async def test_include_loop_is_a_permerror(zone: ZoneServer, sync: SyncResolver) -> None:
    zone.txt("example.org", "v=spf1 include:loop.example.org -all")
    zone.txt("loop.example.org", "v=spf1 include:example.org -all")
    assert (await spf(sync)).result is SpfResult.PERMERROR


async def test_include_of_a_domain_without_spf_is_a_permerror(zone: ZoneServer,
                                                               sync: SyncResolver) -> None:
    zone.txt("example.org", "v=spf1 include:nospf.example.org -all").a("nospf.example.org",
                                                                       "192.0.2.1")
    assert (await spf(sync)).result is SpfResult.PERMERROR


async def test_macros(zone: ZoneServer, sync: SyncResolver) -> None:
    zone.txt("example.org", "v=spf1 exists:%{ir}.%{l}._spf.%{d} -all")
    zone.a("10.2.0.192.alice._spf.example.org", "127.0.0.2")
    assert (await spf(sync)).result is SpfResult.PASS
    assert (await spf(sync, "bob@example.org")).result is SpfResult.FAIL


async def test_exp_explanation_with_macros(zone: ZoneServer, sync: SyncResolver) -> None:
    zone.txt("example.org", "v=spf1 -all exp=why.example.org")
    zone.txt("why.example.org", "%{i} is not one of %{d}'s servers")
    chk = await spf(sync)
    assert chk.result is SpfResult.FAIL
    assert chk.explanation == "192.0.2.10 is not one of example.org's servers"


async def test_oversized_record_arrives_over_tcp(zone: ZoneServer, sync: SyncResolver) -> None:
    ips = " ".join(f"ip4:198.51.{i}.0/24" for i in range(100))
    zone.txt("example.org", f"v=spf1 {ips} ip4:{IP} -all")
    assert (await spf(sync)).result is SpfResult.PASS
    assert zone.tcp_queries >= 1


async def test_helo_identity_and_null_sender(zone: ZoneServer, sync: SyncResolver) -> None:
    zone.txt("client.example.org", "v=spf1 a -all").a("client.example.org", IP)
    chk = await spf(sync, sender="")
    assert chk.result is SpfResult.PASS and chk.identity == "helo"
    assert chk.domain == "client.example.org"
    assert "identity=helo" in chk.received_spf


async def test_received_spf_header_text(zone: ZoneServer, sync: SyncResolver) -> None:
    zone.txt("example.org", "v=spf1 ip4:192.0.2.0/24 -all")
    chk = await spf(sync)
    assert chk.received_spf.startswith("Pass (mx.test: domain of example.org designates")
    assert "client-ip=192.0.2.10" in chk.received_spf


@pytest.mark.parametrize("ip, sender, result", [
    ("not-an-ip", "a@example.org", SpfResult.PERMERROR),
    (IP, "a@localhost", SpfResult.NONE),
    (IP, "a@", SpfResult.NONE),
])
async def test_bad_input_never_crashes(sync: SyncResolver, ip: str, sender: str,
                                       result: SpfResult) -> None:
    assert (await spf(sync, sender, ip=ip)).result is result


async def test_malformed_label_domain_is_none(zone: ZoneServer, sync: SyncResolver) -> None:
    assert (await spf(sync, "a@bad..example.org")).result is SpfResult.NONE


async def test_more_than_ten_mx_records_is_a_permerror(zone: ZoneServer,
                                                       sync: SyncResolver) -> None:
    zone.txt("example.org", "v=spf1 mx -all")
    for i in range(11):
        zone.mx("example.org", f"mx{i}.example.org", i)
    assert (await spf(sync)).result is SpfResult.PERMERROR


async def test_cname_loop_is_a_temperror_not_a_hang(zone: ZoneServer,
                                                    sync: SyncResolver) -> None:
    # A looping chain is a server failure to a resolver (unbound and dnspython alike).
    zone.cname("l1.example.org", "l2.example.org").cname("l2.example.org", "l1.example.org")
    zone.txt("example.org", f"v=spf1 a:l1.example.org ip4:{IP} -all")
    t0 = time.monotonic()
    assert (await spf(sync)).result is SpfResult.TEMPERROR
    assert (await spf(sync, "x@l1.example.org")).result is SpfResult.TEMPERROR
    assert time.monotonic() - t0 < 3


async def test_ptr_mechanism(zone: ZoneServer, sync: SyncResolver) -> None:
    zone.txt("example.org", "v=spf1 ptr -all")
    zone.ptr(IP, "mail.example.org").a("mail.example.org", IP)
    assert (await spf(sync)).result is SpfResult.PASS
    zone.ptr("192.0.2.11", "mail.example.org")  # forward lookup does not confirm it
    assert (await spf(sync, ip="192.0.2.11")).result is SpfResult.FAIL
