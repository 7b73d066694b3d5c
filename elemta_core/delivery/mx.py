"""MX lookup (RFC 5321 section 5.1): preference order, implicit MX, null MX (RFC 7505).

The lookup talks to a small resolver Protocol, which the core resolver
(:mod:`elemta_core.dns`) satisfies; tests point that resolver at a loopback DNS server. Outcomes are values, not
exceptions, because each maps onto a delivery decision: try these hosts, defer, or fail.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field
from typing import Any, Protocol

from elemta_core.dns.answer import DnsAnswer, DnsStatus


class DnsLookup(Protocol):
    """What MX lookup needs from a resolver (:class:`elemta_core.dns.Resolver` fits)."""

    async def query(self, name: str, rdtype: str) -> DnsAnswer: ...


class MXOutcome(enum.Enum):
    HOSTS = "hosts"  # try ``hosts`` in order
    NULL_MX = "null_mx"  # the domain accepts no mail (RFC 7505): fail permanently
    NOT_FOUND = "not_found"  # NXDOMAIN or no address at all: fail permanently
    TEMPFAIL = "tempfail"  # try again later


@dataclass(frozen=True, slots=True)
class MXHost:
    name: str
    preference: int
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MXResult:
    outcome: MXOutcome
    hosts: tuple[MXHost, ...] = field(default_factory=tuple)
    detail: str = ""


def _norm(name: Any) -> str:
    return str(name).rstrip(".").lower()


async def addresses(dns: DnsLookup, host: str) -> tuple[tuple[str, ...], bool]:
    """IPv4 then IPv6 addresses of ``host``; the flag is True when a lookup failed temporarily."""
    out: list[str] = []
    temp = False
    for rdtype in ("A", "AAAA"):
        ans = await dns.query(host, rdtype)
        if ans.status is DnsStatus.OK:
            out.extend(str(r) for r in ans.records)
        elif ans.status is DnsStatus.TEMPFAIL:
            temp = True
        elif ans.status is DnsStatus.NXDOMAIN:
            break  # no point asking AAAA of a name that does not exist
    return tuple(dict.fromkeys(out)), temp


async def lookup_mx(dns: DnsLookup, domain: str, rng: random.Random | None = None) -> MXResult:
    """Resolve where mail for ``domain`` goes: the hosts to try, best preference first."""
    domain = _norm(domain)
    rng = rng or random.Random()
    ans = await dns.query(domain, "MX")
    if ans.status is DnsStatus.TEMPFAIL:
        return MXResult(MXOutcome.TEMPFAIL, detail=f"MX lookup for {domain} failed: {ans.error}")
    if ans.status in (DnsStatus.NXDOMAIN, DnsStatus.INVALID):
        return MXResult(MXOutcome.NOT_FOUND, detail=f"domain {domain} does not exist")
    if ans.status is DnsStatus.NODATA or not ans.records:
        # Implicit MX (RFC 5321 5.1): the domain itself, preference 0.
        addrs, temp = await addresses(dns, domain)
        if addrs:
            return MXResult(MXOutcome.HOSTS, (MXHost(domain, 0, addrs),))
        if temp:
            return MXResult(MXOutcome.TEMPFAIL, detail=f"address lookup for {domain} failed")
        return MXResult(MXOutcome.NOT_FOUND, detail=f"domain {domain} has no MX and no address")
    pairs = [(int(pref), _norm(exchange)) for pref, exchange in ans.records]
    if any(name in ("", ".") for _, name in pairs):
        # Null MX (RFC 7505): "MX 0 ." says the domain accepts no mail at all.
        return MXResult(MXOutcome.NULL_MX, detail=f"domain {domain} does not accept mail (null MX)")
    # Best preference first; equal preferences in random order to spread the load.
    pairs.sort(key=lambda p: (p[0], rng.random()))
    hosts: list[MXHost] = []
    temp = False
    for pref, name in dict.fromkeys(pairs):
        addrs, t = await addresses(dns, name)
        temp = temp or t
        if addrs:
            hosts.append(MXHost(name, pref, addrs))
    if hosts:
        return MXResult(MXOutcome.HOSTS, tuple(hosts))
    if temp:
        return MXResult(MXOutcome.TEMPFAIL, detail=f"no address for the MX hosts of {domain} yet")
    return MXResult(MXOutcome.NOT_FOUND, detail=f"no MX host of {domain} has an address")
