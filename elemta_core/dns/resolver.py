"""The one asynchronous resolver every DNS-using part of Elemta shares (dnspython).

Nameservers (with ports) come from ``[dns]``, or the system's; answers are cached by
dnspython's LRU cache, which honours each answer's TTL (negative answers included), and can
be turned off. A missing or broken ``/etc/resolv.conf`` never stops the server: lookups then
fail as temporary errors and the checks report ``temperror``.
"""

from __future__ import annotations

import logging
import threading
import time

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.rdataclass
import dns.rdatatype
import dns.resolver

from elemta_core.dns.answer import DnsAnswer, DnsStatus
from elemta_core.dns.config import DnsConfig

log = logging.getLogger("elemta.dns")

#: A stand-in when the system has no usable resolver configuration: nothing answers there
#: on most hosts, so every lookup is a quick temporary error rather than a start-up failure.
FALLBACK_NAMESERVER = "127.0.0.1"

_SUPPORTED = frozenset({"A", "AAAA", "MX", "TXT", "PTR", "CNAME", "NS", "SPF"})


class Resolver:
    """``await resolver.query(name, "TXT")`` → :class:`DnsAnswer`; never raises for DNS trouble."""

    def __init__(self, config: DnsConfig | None = None,
                 resolv_conf: str = "/etc/resolv.conf") -> None:
        self.config = config or DnsConfig()
        r = dns.asyncresolver.Resolver(configure=False)
        servers = self.config.servers()
        if servers:
            r.nameservers = [dns.nameserver.Do53Nameserver(h, p) for h, p in servers]
        else:
            try:
                r.read_resolv_conf(resolv_conf)
            except (dns.resolver.NoResolverConfiguration, OSError, ValueError) as e:
                log.warning("no usable system resolver (%s); DNS checks will report temperror",
                            e)
                r.nameservers = [FALLBACK_NAMESERVER]
            if not r.nameservers:
                r.nameservers = [FALLBACK_NAMESERVER]
        r.timeout = self.config.timeout
        r.lifetime = self.config.lifetime
        r.retry_servfail = False
        r.cache = dns.resolver.LRUCache(self.config.cache_size) if self.config.cache else None
        self._resolver = r
        self.lookups = 0
        # Answers, converted, keyed by (name, type), until dnspython's cache would let them go:
        # read without the event loop by worker threads (SyncResolver) and by checks run on
        # the loop from the cache alone (CachedLookups); and the first place query() looks,
        # cheaper than a dnspython cache hit. Negative answers too (NXDOMAIN, NODATA), with
        # the expiry dnspython gave them (RFC 2308: the SOA's), so a check whose lookups
        # find nothing can run from the cache as well.
        self._answers: dict[tuple[str, str], tuple[float, DnsAnswer]] = {}
        self._answers_lock = threading.Lock()
        #: Bumped by flush(): results computed from earlier answers are stale.
        self.generation = 0

    @property
    def nameservers(self) -> list[str]:
        return [str(ns) for ns in self._resolver.nameservers]

    def flush(self) -> None:
        """Forget cached answers (tests that rewrite zones, `elemta reload`)."""
        if self._resolver.cache is not None:
            self._resolver.cache.flush()
        with self._answers_lock:
            self._answers.clear()
            self.generation += 1

    def cached(self, name: str, rdtype: str) -> DnsAnswer | None:
        """A still-valid answer (positive, NXDOMAIN or NODATA), from any thread; None when it
        must be asked."""
        hit = self.cached_until(name, rdtype)
        return None if hit is None else hit[1]

    def cached_until(self, name: str, rdtype: str) -> tuple[float, DnsAnswer] | None:
        """:meth:`cached`, with when the answer expires (``time.time()`` seconds)."""
        key = (name.rstrip(".").lower(), rdtype.upper())
        with self._answers_lock:
            hit = self._answers.get(key)
            if hit is None:
                return None
            if hit[0] <= time.time():
                del self._answers[key]
                return None
            return hit

    def _remember(self, name: str, rdtype: str, expires: float, answer: DnsAnswer) -> None:
        if not self.config.cache:
            return
        with self._answers_lock:
            if len(self._answers) >= self.config.cache_size:
                self._answers.pop(next(iter(self._answers)))  # the oldest entry
            self._answers[(name.rstrip(".").lower(), rdtype)] = (expires, answer)

    def _remember_void(self, name: str, rdtype: str, qname: dns.name.Name,
                       cache_type: dns.rdatatype.RdataType, answer: DnsAnswer) -> None:
        """Keep a negative answer as long as dnspython's cache keeps it (its key: the name,
        the type asked or ANY for NXDOMAIN, the class), and not at all when it does not."""
        cache = self._resolver.cache
        if cache is None:
            return
        entry = cache.get((qname, cache_type, dns.rdataclass.IN))
        if entry is not None:
            self._remember(name, rdtype, entry.expiration, answer)

    async def close(self) -> None:
        self.flush()

    async def query(self, name: str, rdtype: str) -> DnsAnswer:
        rdtype = rdtype.upper()
        if rdtype not in _SUPPORTED:
            raise ValueError(f"unsupported record type {rdtype}")
        # Only names once asked, so valid, are there (spelled as below: trailing dots dropped)
        known = self.cached(name, rdtype)
        if known is not None:
            return known
        try:
            qname = dns.name.from_text(name.rstrip(".") + "." if name else "")
        except (dns.exception.DNSException, UnicodeError, ValueError) as e:
            return DnsAnswer(DnsStatus.INVALID, error=f"invalid name {name!r}: {e}")
        if qname == dns.name.root:
            return DnsAnswer(DnsStatus.INVALID, error="empty name")
        self.lookups += 1
        try:
            ans = await self._resolver.resolve(qname, rdtype, search=False)
        except dns.resolver.NXDOMAIN:
            void = DnsAnswer(DnsStatus.NXDOMAIN, error=f"{name}: no such domain")
            self._remember_void(name, rdtype, qname, dns.rdatatype.ANY, void)
            return void
        except dns.resolver.NoAnswer:
            void = DnsAnswer(DnsStatus.NODATA, error=f"{name}: no {rdtype} record")
            self._remember_void(name, rdtype, qname, dns.rdatatype.from_text(rdtype), void)
            return void
        except dns.resolver.YXDOMAIN:
            return DnsAnswer(DnsStatus.NXDOMAIN, error=f"{name}: name too long after DNAME")
        except dns.resolver.LifetimeTimeout:
            return DnsAnswer(DnsStatus.TEMPFAIL, error=f"{name} {rdtype}: timed out")
        except dns.resolver.NoNameservers as e:
            return DnsAnswer(DnsStatus.TEMPFAIL, error=f"{name} {rdtype}: {_short(e)}")
        except dns.exception.DNSException as e:
            return DnsAnswer(DnsStatus.TEMPFAIL, error=f"{name} {rdtype}: {_short(e)}")
        except OSError as e:  # e.g. network unreachable
            return DnsAnswer(DnsStatus.TEMPFAIL, error=f"{name} {rdtype}: {e}")
        answer = DnsAnswer(DnsStatus.OK, tuple(_records(rdtype, ans)))
        self._remember(name, rdtype, ans.expiration, answer)
        return answer


def _short(e: Exception) -> str:
    text = str(e)
    return text if len(text) <= 200 else text[:197] + "..."


def _records(rdtype: str, ans: dns.resolver.Answer) -> list[object]:
    out: list[object] = []
    for rd in ans:
        if rdtype in ("TXT", "SPF"):
            out.append(b"".join(rd.strings))
        elif rdtype in ("A", "AAAA"):
            out.append(rd.address)
        elif rdtype == "MX":
            out.append((rd.preference, rd.exchange.to_text(omit_final_dot=True)))
        else:  # PTR, CNAME, NS
            out.append(rd.target.to_text(omit_final_dot=True))
    return out
