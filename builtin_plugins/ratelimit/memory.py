"""The in-process store: the default, needing no server. Counts are this process's alone.

Every operation is synchronous code inside one event-loop step, so a check is atomic without
locks. Expired entries are swept at most every few seconds, so memory stays bounded by the keys
active within their periods.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from builtin_plugins.ratelimit.backend import (
    ALLOWED,
    LEASE_LIMIT,
    KeyState,
    LeaseRequest,
    Verdict,
)
from builtin_plugins.ratelimit.gcra import US, Charge, gcra

SWEEP_EVERY_US = 5 * US


def _monotonic_us() -> float:
    return time.monotonic() * US


class MemoryBackend:
    name = "memory"

    def __init__(self, clock: Callable[[], float] = _monotonic_us) -> None:
        self.clock = clock
        self.tats: dict[str, float] = {}
        self.leases: dict[str, dict[str, float]] = {}
        self._next_sweep = 0.0

    def _sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_EVERY_US
        self.tats = {k: t for k, t in self.tats.items() if t > now}
        for key in list(self.leases):
            live = {m: exp for m, exp in self.leases[key].items() if exp > now}
            if live:
                self.leases[key] = live
            else:
                del self.leases[key]

    def _live_leases(self, key: str, now: float) -> dict[str, float]:
        held = self.leases.get(key)
        if held is None:
            return {}
        for m in [m for m, exp in held.items() if exp <= now]:
            del held[m]
        return held

    async def check(self, charges: Sequence[Charge], lease: LeaseRequest | None = None) -> Verdict:
        return self.check_now(charges, lease)

    def check_now(self, charges: Sequence[Charge], lease: LeaseRequest | None = None) -> Verdict:
        """The whole check, synchronously (what ``check`` awaits; benchmarks call it bare)."""
        now = self.clock()
        self._sweep(now)
        tats = self.tats
        new: list[float] = []
        for c in charges:
            step = gcra(tats.get(c.key), now, c.interval_us, c.burst, c.cost)
            if not step.allowed:
                return Verdict(False, c.name, step.retry_us / US)
            new.append(step.tat)
        if lease is not None:
            held = self._live_leases(lease.key, now)
            if len(held) >= lease.limit:
                return Verdict(False, LEASE_LIMIT, 0.0)
            held[lease.member] = now + lease.ttl_ms * 1000
            self.leases[lease.key] = held
        for c, tat in zip(charges, new):
            tats[c.key] = tat
        return ALLOWED

    async def refresh(self, leases: Sequence[tuple[str, str]], ttl_ms: int) -> None:
        now = self.clock()
        expiry = now + ttl_ms * 1000
        for key, member in leases:
            held = self.leases.get(key)
            if held is not None and held.get(member, 0.0) > now:
                held[member] = expiry

    async def release(self, key: str, member: str) -> None:
        held = self.leases.get(key)
        if held is not None:
            held.pop(member, None)
            if not held:
                del self.leases[key]

    async def inspect(self, keys: Sequence[str]) -> dict[str, KeyState]:
        now = self.clock()
        out: dict[str, KeyState] = {}
        for key in keys:
            if key in self.leases:
                out[key] = KeyState("lease", now, leases=len(self._live_leases(key, now)))
            elif self.tats.get(key, 0.0) > now:
                out[key] = KeyState("rate", now, tat_us=self.tats[key])
            else:
                out[key] = KeyState("none", now)
        return out

    async def scan(self, prefix: str, limit: int) -> list[str]:
        now = self.clock()
        self._next_sweep = 0.0
        self._sweep(now)
        keys = [k for k in (*self.tats, *self.leases) if k.startswith(prefix)]
        return sorted(keys)[:limit]

    async def delete(self, keys: Sequence[str]) -> int:
        n = 0
        for key in keys:
            n += (self.tats.pop(key, None) is not None) + (self.leases.pop(key, None) is not None)
        return n

    async def close(self) -> None:
        self.tats.clear()
        self.leases.clear()
