"""This node's live connection leases, refreshed while their connections live.

A lease is a slot in a per-client sorted set, scored by its expiry. The node refreshes all of
its leases every third of the TTL in one round trip; when the node dies (even by SIGKILL) the
refreshes stop and its slots expire by themselves, so no crash leaves connections counted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from builtin_plugins.ratelimit.backend import Backend, BackendError

log = logging.getLogger("elemta.plugin.rate_limiter")


@dataclass(frozen=True, slots=True)
class Lease:
    key: str
    member: str


class LeaseKeeper:
    def __init__(self, backend: Backend, ttl: float) -> None:
        self.backend = backend
        self.ttl = ttl
        self.live: set[Lease] = set()
        self._task: asyncio.Task[None] | None = None
        self._last_error = 0.0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    def add(self, lease: Lease) -> None:
        self.live.add(lease)

    async def release(self, lease: Lease) -> None:
        self.live.discard(lease)
        try:
            await self.backend.release(lease.key, lease.member)
        except BackendError as e:
            # The lease expires on its own within one TTL, as if this node had crashed.
            self._warn(f"release failed, the slot expires within {self.ttl:g}s: {e}")

    async def refresh_now(self) -> None:
        if self.live:
            await self.backend.refresh([(ls.key, ls.member) for ls in self.live],
                                       int(self.ttl * 1000))

    async def _run(self) -> None:
        every = self.ttl / 3
        while True:
            await asyncio.sleep(every)
            try:
                await self.refresh_now()
            except BackendError as e:
                self._warn(f"lease refresh failed: {e}")
            except Exception:
                log.exception("lease refresh failed")

    def _warn(self, msg: str) -> None:
        now = time.monotonic()
        if now - self._last_error > 5:
            self._last_error = now
            log.warning("%s", msg)
