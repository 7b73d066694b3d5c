"""Microbenchmark: the pipeline's cost per no-op hook call (sync and async plugins).

    .venv/bin/python -m tests.bench.bench_dispatch

Reports ns per hook call = (time of a chain of N no-op links - time of an empty chain) / N,
so the figure is dispatch overhead only, with the event loop in use (uvloop when present).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time

from elemta_core.hooks.context import HookContext
from elemta_core.hooks.pipeline import Pipeline, make_link
from elemta_core.hooks.types import CONTINUE, FailurePolicy, HookPoint, HookResult

HOOK = HookPoint.RCPT_TO
LINKS = 10
ROUNDS = 20000


def noop_sync(ctx: HookContext) -> HookResult:
    return CONTINUE


async def noop_async(ctx: HookContext) -> HookResult:
    return CONTINUE


async def per_call(fn: object, timeout: float | None) -> float:
    ctx = HookContext(session_id="bench", peer_ip="192.0.2.1")
    empty = Pipeline([])
    full = Pipeline([make_link(f"p{i}", HOOK, fn, i, timeout, FailurePolicy.TEMPFAIL)  # type: ignore[arg-type]
                     for i in range(LINKS)])

    async def loop(p: Pipeline) -> float:
        run = p.run
        t0 = time.perf_counter()
        for _ in range(ROUNDS):
            await run(HOOK, ctx)
        return time.perf_counter() - t0

    samples = []
    for _ in range(7):
        base = await loop(empty)
        samples.append((await loop(full) - base) / (ROUNDS * LINKS))
    return statistics.median(samples) * 1e9


async def main() -> dict[str, float]:
    return {
        "sync_ns_per_hook": round(await per_call(noop_sync, None), 1),
        "async_ns_per_hook_no_timeout": round(await per_call(noop_async, None), 1),
        "async_ns_per_hook_with_timeout": round(await per_call(noop_async, 5.0), 1),
    }


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
        loop_name = "uvloop"
    except ImportError:
        loop_name = "asyncio"
    result = asyncio.run(main())
    result["loop"] = loop_name  # type: ignore[assignment]
    json.dump(result, sys.stdout, indent=2)
    print()
