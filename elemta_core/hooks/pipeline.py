"""The hook pipeline: precomputed per-hook chains, priority order, timeouts, failure policy.

Dispatch is on the path of every SMTP command, so the chain for each hook is built once
(a tuple of links) and a call does no lookups, formatting or allocation beyond the plugin's
own work. Sync hook functions are called directly; async ones run under ``asyncio.timeout``
(a timer handle, not a task). Statistics are plain counters on the link, exported at
scrape time by :mod:`elemta_core.metrics`.
"""

from __future__ import annotations

import asyncio
import bisect
import inspect
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from elemta_core.hooks.context import HookContext, SecurityEvent
from elemta_core.hooks.types import (
    CONTINUE,
    OBSERVER_HOOKS,
    Action,
    FailurePolicy,
    HookPoint,
    HookResult,
)

log = logging.getLogger("elemta.hooks")

#: Latency histogram buckets (seconds), shared by every link.
BUCKETS: tuple[float, ...] = (
    0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)

TEMPFAIL_ON_FAILURE = HookResult(
    Action.TEMPFAIL, 451, "4.3.0", "Temporary local problem, please try again later"
)
REJECT_ON_FAILURE = HookResult(Action.REJECT, 554, "5.3.0", "Rejected by local policy")


class _Resume:
    """Awaits the rest of a coroutine that was already started with ``send(None)``.

    It hands the first yielded future to the running task and then relays sends and throws
    (cancellation included), exactly as ``await`` would have done from the start.
    """

    __slots__ = ("coro", "first")

    def __init__(self, coro: Any, first: Any) -> None:
        self.coro = coro
        self.first = first

    def __await__(self) -> Any:
        coro, value = self.coro, self.first
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # noqa: BLE001 - relayed into the coroutine
                try:
                    value = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


async def _coerce(link: Link, r: Any) -> HookResult:
    """A sync hook that returned an awaitable, or a hook that returned garbage."""
    if inspect.isawaitable(r):
        async with asyncio.timeout(link.timeout):
            r = await r
    if not isinstance(r, HookResult):
        raise TypeError(f"hook returned {type(r).__name__}, not HookResult")
    return r


class PluginUnavailable(Exception):
    """Raised by a hook function whose plugin cannot answer now (down, restarting, disabled)."""


@dataclass(slots=True)
class HookStats:
    count: int = 0
    total: float = 0.0
    failures: int = 0
    timeouts: int = 0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    actions: list[int] = field(default_factory=lambda: [0] * len(Action))

    def observe(self, seconds: float) -> None:
        self.count += 1
        self.total += seconds
        self.buckets[bisect.bisect_left(BUCKETS, seconds)] += 1


@dataclass(slots=True)
class Link:
    """One plugin's function on one hook, with everything dispatch needs precomputed."""

    plugin: str
    hook: HookPoint
    fn: Callable[[HookContext], Any]
    priority: int
    timeout: float | None
    policy: FailurePolicy
    is_async: bool
    stats: HookStats = field(default_factory=HookStats)


def make_link(plugin: str, hook: HookPoint, fn: Callable[[HookContext], Any], priority: int,
              timeout: float | None, policy: FailurePolicy) -> Link:
    return Link(plugin, hook, fn, priority, timeout if timeout and timeout > 0 else None,
                policy, inspect.iscoroutinefunction(fn))


def failure_result(policy: FailurePolicy) -> HookResult:
    if policy is FailurePolicy.CONTINUE:
        return CONTINUE
    if policy is FailurePolicy.REJECT:
        return REJECT_ON_FAILURE
    return TEMPFAIL_ON_FAILURE


class Pipeline:
    """Immutable once built; the daemon swaps in a new one on reload."""

    def __init__(
        self,
        links: Iterable[Link],
        on_failure: Callable[[HookPoint, HookContext, SecurityEvent], None] | None = None,
    ) -> None:
        by_hook: dict[HookPoint, list[Link]] = {}
        for link in links:
            by_hook.setdefault(link.hook, []).append(link)
        self.chains: dict[HookPoint, tuple[Link, ...]] = {
            hp: tuple(sorted(by_hook.get(hp, ()), key=lambda lk: (lk.priority, lk.plugin)))
            for hp in HookPoint
        }
        self._on_failure = on_failure

    def links(self) -> list[Link]:
        return [lk for chain in self.chains.values() for lk in chain]

    def has(self, hook: HookPoint) -> bool:
        return bool(self.chains[hook])

    async def run(self, hook: HookPoint, ctx: HookContext) -> HookResult:
        """Run ``hook``'s chain; the first non-CONTINUE result decides (observers: none)."""
        chain = self.chains[hook]
        if not chain:
            return CONTINUE
        observer = hook in OBSERVER_HOOKS
        perf = time.perf_counter
        for link in chain:
            t0 = perf()
            try:
                if link.is_async:
                    # Eager start: most hooks finish without awaiting anything, and those need
                    # neither a task nor a timer. Only one that suspends gets the timeout.
                    coro = link.fn(ctx)
                    try:
                        yielded = coro.send(None)
                    except StopIteration as stop:
                        r = stop.value
                    else:
                        if link.timeout is None:
                            r = await _Resume(coro, yielded)
                        else:
                            async with asyncio.timeout(link.timeout):
                                r = await _Resume(coro, yielded)
                else:
                    r = link.fn(ctx)
                if r.__class__ is not HookResult:
                    r = await _coerce(link, r)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    raise
                r = self._failed(link, ctx, exc)
            link.stats.observe(perf() - t0)
            if r is CONTINUE:
                continue
            if r.tags:
                ctx.tags.update(r.tags)
            if r.headers:
                ctx.header_changes.extend(r.headers)
            link.stats.actions[r.action] += 1
            if r.action is not Action.CONTINUE and not observer:
                return r
        return CONTINUE

    def _failed(self, link: Link, ctx: HookContext, exc: BaseException) -> HookResult:
        if isinstance(exc, TimeoutError):
            link.stats.timeouts += 1
            why = f"timed out after {link.timeout:g}s"
        elif isinstance(exc, PluginUnavailable):
            link.stats.failures += 1
            why = f"unavailable: {exc}"
        else:
            link.stats.failures += 1
            why = f"{type(exc).__name__}: {exc}"
        log.warning("plugin %s failed on %s (%s); policy %s", link.plugin, link.hook.value,
                    why, link.policy.value,
                    exc_info=exc if not isinstance(exc, (TimeoutError, PluginUnavailable)) else None)
        if self._on_failure is not None and link.hook is not HookPoint.PLUGIN_FAILED:
            self._on_failure(
                HookPoint.PLUGIN_FAILED, ctx,
                SecurityEvent("plugin_failed", why, plugin=link.plugin,
                              data={"hook": link.hook.value, "policy": link.policy.value}),
            )
        return failure_result(link.policy)
