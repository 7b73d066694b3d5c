"""Worker threads and DNS for the blocking libraries (pyspf, dkimpy) the checks run on.

A check whose DNS answers are all cached runs on the event loop: it is then a short
computation, and handing it to a thread and back (futures, wake-ups, GIL hand-overs) costs
more than the check. Any other check runs in a small thread pool, so the event loop never
waits on a library's DNS calls; those go back to the shared async resolver through
:class:`~elemta_core.dns.sync.SyncResolver`.

A check given a ``memo`` key (SPF: client address, sender, HELO) keeps its result until the
first of the DNS answers it used expires, or the resolver's cache is flushed: until then,
running it again could only give the same result. Connections from the same host with the
same HELO, and mail from the same sender, are the common case.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from elemta_core.dns.config import DnsConfig
from elemta_core.dns.resolver import Resolver
from elemta_core.dns.sync import CachedLookups, NotCached, Queries, SyncResolver
from elemta_core.plugins.api import PluginServices

T = TypeVar("T")

#: Results kept per plugin, and for at most this long even when no DNS answer bounds them.
MEMO_SIZE = 10_000
MEMO_MAX_SECONDS = 3600.0


class AuthRuntime:
    def __init__(self, services: PluginServices | None, workers: int,
                 resolver: Resolver | None = None) -> None:
        shared = resolver or (services.resolver if services is not None else None)
        self._owned = shared is None
        if shared is None:
            cfg = getattr(services.config, "dns", None) if services is not None else None
            shared = Resolver(cfg if isinstance(cfg, DnsConfig) else DnsConfig())
        self.resolver: Resolver = shared
        self.workers = workers
        self._executor: ThreadPoolExecutor | None = None
        self._sync: SyncResolver | None = None
        self._memo: dict[Hashable, tuple[float, int, Any]] = {}
        self.memo_hits = 0

    @property
    def sync(self) -> SyncResolver:
        if self._sync is None:
            raise RuntimeError("AuthRuntime.start() was not awaited")
        return self._sync

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="elemta-auth")
        self._sync = SyncResolver(self.resolver, asyncio.get_running_loop())

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._sync is None:
            await self.start()
        loop = asyncio.get_running_loop()
        # After stop() (a reload swapped plugins mid-message) the loop's default pool
        # finishes the stragglers; no new pool is left behind.
        return await loop.run_in_executor(self._executor, fn, *args)

    async def check(self, fn: Callable[[Queries], T], inline: bool = True,
                    memo: Hashable | None = None) -> T:
        """``fn(queries)``: on the loop from the DNS cache alone, else (a miss, or not
        ``inline``) again in a worker thread with the blocking resolver.

        ``fn`` must be free of side effects a second run would repeat: after a miss its
        first result is thrown away, whatever it was (a library may have swallowed the miss).
        With ``memo`` (a key naming every input of ``fn``), a result computed from the cache
        is kept as long as every answer it used, and returned for the same key meanwhile.
        """
        if memo is not None:
            kept = self._memo.get(memo)
            if kept is not None:
                if kept[0] > time.time() and kept[1] == self.resolver.generation:
                    self.memo_hits += 1
                    return kept[2]  # type: ignore[no-any-return]
                del self._memo[memo]
        if inline:
            cached = CachedLookups(self.resolver)
            generation = self.resolver.generation
            try:
                result = fn(cached)
            except NotCached:
                pass
            else:
                if not cached.missed:
                    if memo is not None:
                        if len(self._memo) >= MEMO_SIZE:
                            self._memo.pop(next(iter(self._memo)))  # the oldest
                        self._memo[memo] = (min(cached.until, time.time() + MEMO_MAX_SECONDS),
                                            generation, result)
                    return result
        if self._sync is None:
            await self.start()
        return await self.run(fn, self.sync)

    async def stop(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False)  # queued checks still finish
            self._executor = None
        if self._owned:
            await self.resolver.close()
