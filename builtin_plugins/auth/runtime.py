"""Worker threads and DNS for the blocking libraries (pyspf, dkimpy) the checks run on.

A check whose DNS answers are all cached runs on the event loop: it is then a short
computation, and handing it to a thread and back (futures, wake-ups, GIL hand-overs) costs
more than the check. Any other check runs in a small thread pool, so the event loop never
waits on a library's DNS calls; those go back to the shared async resolver through
:class:`~elemta_core.dns.sync.SyncResolver`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from elemta_core.dns.config import DnsConfig
from elemta_core.dns.resolver import Resolver
from elemta_core.dns.sync import CachedLookups, NotCached, Queries, SyncResolver
from elemta_core.plugins.api import PluginServices

T = TypeVar("T")


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

    async def check(self, fn: Callable[[Queries], T], inline: bool = True) -> T:
        """``fn(queries)``: on the loop from the DNS cache alone, else (a miss, or not
        ``inline``) again in a worker thread with the blocking resolver.

        ``fn`` must be free of side effects a second run would repeat: after a miss its
        first result is thrown away, whatever it was (a library may have swallowed the miss).
        """
        if inline:
            cached = CachedLookups(self.resolver)
            try:
                result = fn(cached)
            except NotCached:
                pass
            else:
                if not cached.missed:
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
