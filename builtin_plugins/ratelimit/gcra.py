"""GCRA (the generic cell rate algorithm), the one rate algorithm both backends run.

A limit of ``limit`` per ``period`` becomes an emission interval ``T = period / limit`` and a
burst ``B``. The only state is the theoretical arrival time (TAT): the moment the bucket is
empty again. A charge of ``cost`` is allowed when ``TAT + cost·T - B·T <= now``; the wait
otherwise is exactly that difference, which becomes the reply's retry hint. One number per key,
exact under any interleaving once the update is atomic (a Lua script on Redis, one event-loop
step in memory). :mod:`builtin_plugins.ratelimit.scripts` holds the same arithmetic in Lua.
"""

from __future__ import annotations

from dataclasses import dataclass

US = 1_000_000


@dataclass(frozen=True, slots=True)
class Charge:
    """One rate limit to charge: ``cost`` units against ``key``."""

    key: str
    name: str  # the limit's name, for replies, metrics and logs
    interval_us: float  # period / limit, in microseconds
    burst: int
    cost: int = 1

    @classmethod
    def per_period(cls, key: str, name: str, limit: int, period: float, burst: int = 0,
                   cost: int = 1) -> Charge:
        return cls(key, name, period * US / limit, burst or limit, cost)


@dataclass(frozen=True, slots=True)
class Step:
    allowed: bool
    tat: float  # the new TAT when allowed, else the unchanged one
    retry_us: float  # how long until the charge would pass (0 when allowed)


def gcra(tat: float | None, now: float, interval: float, burst: int, cost: int) -> Step:
    """One GCRA decision; ``tat`` is None for a key never seen (or expired)."""
    base = now if tat is None or tat < now else tat
    new_tat = base + interval * cost
    allow_at = new_tat - interval * burst
    if allow_at > now:
        # A charge above the burst can never pass: hint a full period rather than forever.
        retry = interval * burst if cost > burst else allow_at - now
        return Step(False, base, retry)
    return Step(True, new_tat, 0.0)


def used(tat: float | None, now: float, interval: float) -> float:
    """Units currently counted against a key (what ``show`` prints)."""
    if tat is None or tat <= now:
        return 0.0
    return (tat - now) / interval
