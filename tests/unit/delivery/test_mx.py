"""MX lookup against a real DNS server on loopback, through the core resolver."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from elemta_core.delivery.mx import MXOutcome, lookup_mx
from elemta_core.dns.config import DnsConfig
from elemta_core.dns.resolver import Resolver
from tests.support.dns_server import ZoneServer


def zone(dns: ZoneServer) -> ZoneServer:
    dns.mx("pref.test", "backup.pref.test", 20).mx("pref.test", "primary.pref.test", 10)
    dns.a("primary.pref.test", "127.0.0.1").a("backup.pref.test", "127.0.0.2", "::1")
    dns.a("implicit.test", "127.0.0.3")
    dns.mx("null.test", ".", 0)
    dns.mx("noaddr.test", "ghost.noaddr.test").txt("ghost.noaddr.test", "x")
    dns.txt("nothing.test", "v=spf1 -all")
    dns.mx("brokenmx.test", "broken.test")
    dns.servfail.update({"servfail.test", "broken.test"})
    return dns


@pytest.fixture(scope="module")
def resolver() -> Iterator[Resolver]:
    with ZoneServer() as dns:
        zone(dns)
        yield Resolver(DnsConfig(nameservers=[dns.address], timeout=1.0, lifetime=2.0))


async def test_preference_order_and_addresses(resolver: Resolver) -> None:
    r = await lookup_mx(resolver, "PREF.test.")
    assert r.outcome is MXOutcome.HOSTS
    assert [(h.name, h.preference, h.addresses) for h in r.hosts] == [
        ("primary.pref.test", 10, ("127.0.0.1",)),
        ("backup.pref.test", 20, ("127.0.0.2", "::1")),
    ]


async def test_equal_preferences_are_shuffled(resolver: Resolver) -> None:
    class Fake:
        async def query(self, name: str, rdtype: str):  # type: ignore[no-untyped-def]
            from elemta_core.dns.answer import DnsAnswer, DnsStatus
            if rdtype == "MX":
                return DnsAnswer(DnsStatus.OK, tuple((10, f"mx{i}.test") for i in range(6)))
            if rdtype == "A":
                return DnsAnswer(DnsStatus.OK, ("127.0.0.1",))
            return DnsAnswer(DnsStatus.NODATA)

    orders = {tuple(h.name for h in (await lookup_mx(Fake(), "x.test", random.Random(i))).hosts)
              for i in range(10)}
    assert len(orders) > 1


async def test_implicit_mx(resolver: Resolver) -> None:
    r = await lookup_mx(resolver, "implicit.test")
    assert r.outcome is MXOutcome.HOSTS
    assert [(h.name, h.preference, h.addresses) for h in r.hosts] == [
        ("implicit.test", 0, ("127.0.0.3",))]


@pytest.mark.parametrize("domain, outcome", [
    ("null.test", MXOutcome.NULL_MX),
    ("absent.test", MXOutcome.NOT_FOUND),  # NXDOMAIN
    ("nothing.test", MXOutcome.NOT_FOUND),  # no MX, no address
    ("noaddr.test", MXOutcome.NOT_FOUND),  # the MX host has no address
    ("servfail.test", MXOutcome.TEMPFAIL),
    ("brokenmx.test", MXOutcome.TEMPFAIL),  # the MX host's address lookup fails
])
async def test_outcomes(resolver: Resolver, domain: str, outcome: MXOutcome) -> None:
    r = await lookup_mx(resolver, domain)
    assert r.outcome is outcome, r
    assert r.detail
