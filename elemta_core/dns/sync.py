"""Blocking facades over the shared async resolver, for libraries that do their own DNS.

pyspf and dkimpy call a lookup function synchronously, deep inside their own logic. They
run in worker threads; each lookup they make is handed back to the event loop that owns the
resolver (``run_coroutine_threadsafe``) and the worker waits. So the loop never blocks, and
every lookup shares one resolver, one cache and one set of nameservers.

When every answer a check needs is already cached, the thread hand-off costs more than the
check: :class:`CachedLookups` answers from the cache alone, so a check can run on the loop
itself and be sent to a thread only when it missed (see ``AuthRuntime.check``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import threading
from collections.abc import Callable
from typing import Any, Protocol

from elemta_core.dns.answer import DnsAnswer, DnsStatus, DnsTemporaryError
from elemta_core.dns.resolver import Resolver

#: Grace beyond the resolver's own lifetime before a worker gives up waiting on the loop.
_GRACE = 1.0


class Queries(Protocol):
    """What the adapters below need: a blocking ``query`` (either facade)."""

    def query(self, name: str, rdtype: str) -> DnsAnswer: ...


class NotCached(Exception):
    """A cache-only lookup found nothing: the check must run again where it may wait."""


class CachedLookups:
    """``query(name, rdtype)`` from the resolver's cache alone, on any thread; never waits.

    A miss raises :class:`NotCached` and sets ``missed``: a library may swallow the
    exception (pyspf ignores any error while fetching an ``exp=`` text), so whoever runs a
    check with this must discard its result when ``missed`` is set. One per check.
    """

    __slots__ = ("missed", "resolver", "until")

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self.missed = False
        self.until = math.inf  # when the first of the answers used expires

    def query(self, name: str, rdtype: str) -> DnsAnswer:
        hit = self.resolver.cached_until(name, rdtype)
        if hit is None:
            self.missed = True
            raise NotCached(f"{name} {rdtype}")
        self.until = min(self.until, hit[0])
        return hit[1]


class SyncResolver:
    """``query(name, rdtype)`` from a worker thread, answered on ``loop``."""

    def __init__(self, resolver: Resolver, loop: asyncio.AbstractEventLoop) -> None:
        self.resolver = resolver
        self.loop = loop
        self._loop_thread: int | None = None
        loop.call_soon_threadsafe(self._note_thread)

    def _note_thread(self) -> None:
        self._loop_thread = threading.get_ident()

    def query(self, name: str, rdtype: str) -> DnsAnswer:
        hit = self.resolver.cached(name, rdtype)
        if hit is not None:
            return hit  # no round trip through the event loop for what is already known
        if threading.get_ident() == self._loop_thread:
            raise RuntimeError("SyncResolver.query called on the event loop thread "
                               "(it would deadlock): run the caller in an executor")
        fut = asyncio.run_coroutine_threadsafe(self.resolver.query(name, rdtype), self.loop)
        try:
            return fut.result(self.resolver.config.lifetime + _GRACE)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            return DnsAnswer(DnsStatus.TEMPFAIL, error=f"{name} {rdtype}: timed out")


def dkim_txt_lookup(sync: Queries) -> Callable[..., bytes | None]:
    """A ``dnsfunc`` for dkimpy: ``f(name, timeout=5) -> bytes | None``.

    Names with empty labels mean "no key" (dkimpy builds them from untrusted s= and d=).
    A temporary failure raises :class:`DnsTemporaryError`, which dkimpy does not catch, so
    the caller can report ``temperror`` (RFC 6376 §6.1.2) where dkimpy would say fail.
    """

    def dnsfunc(name: bytes | str, timeout: float = 5) -> bytes | None:
        text = name.decode("utf-8", "replace") if isinstance(name, bytes) else name
        ans = sync.query(text, "TXT")
        if ans.temporary:
            raise DnsTemporaryError(ans.error)
        if not ans.ok or not ans.records:
            return None
        rec: bytes = ans.records[0]
        return rec

    return dnsfunc


def spf_lookup(sync: Queries) -> Callable[[str, str], list[tuple[tuple[str, str], Any]]]:
    """Answers in pyspf's ``DNSLookup`` shape: ``[((name, qtype), value), ...]``.

    TXT values are a one-element tuple of the joined strings (pyspf joins them again);
    a temporary failure raises :class:`DnsTemporaryError` for the caller to turn into
    pyspf's ``TempError``; void answers are ``[]`` (pyspf counts them, RFC 7208 §4.6.4).
    """

    def lookup(name: str, qtype: str) -> list[tuple[tuple[str, str], Any]]:
        ans = sync.query(name, qtype)
        if ans.temporary:
            raise DnsTemporaryError(ans.error)
        if not ans.ok:
            return []
        key = (name, qtype)
        if qtype in ("TXT", "SPF"):
            return [(key, (r,)) for r in ans.records]
        return [(key, r) for r in ans.records]

    return lookup
