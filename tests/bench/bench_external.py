"""External hook round trip and SMTP throughput with an external rcpt_to plugin.

    .venv/bin/python -m tests.bench.bench_external [--calls 3000] [--concurrency 32]
        [--messages 2000] [--sessions 20] [--rounds 3]

Part 1 calls one rcpt_to hook through ``Pipeline.run`` — exactly what an SMTP session does —
on three peers in the same process and run: an in-process plugin, the external plugin over
the hook stream, and the same plugin over unary HandleHook. Sequential calls give p50/p99;
``--concurrency`` calls in flight give calls/s.

Then the plugin is SIGKILLed 5 times: time until the supervisor has it ready again.

Part 2 drives two real ``elemta serve`` processes with Postfix's smtp-source, interleaved:
one with no plugin, one with the external rcpt_to plugin. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from elemta_core.external.catalog import parse_entry
from elemta_core.external.provider import ExternalHandle
from elemta_core.hooks.context import HookContext
from elemta_core.hooks.pipeline import Pipeline, make_link
from elemta_core.hooks.types import FailurePolicy, HookPoint, HookResult
from elemta_core.plugins.api import PluginServices

PLUGIN = Path(__file__).parent / "plugins" / "noop_rcpt.py"
TAGGED = HookResult.with_tags({"bench": "ok"})


def entry_dict(mode: str) -> dict[str, Any]:
    digest = hashlib.sha256(PLUGIN.read_bytes()).hexdigest()
    return {"name": "noop_rcpt", "command": ["{python}", str(PLUGIN)],
            "sha256": {str(PLUGIN): digest}, "mode": mode, "hooks_timeout_ms": 5000}


def context() -> HookContext:
    ctx = HookContext(session_id="bench1", peer_ip="192.0.2.1", peer_port=40000,
                      local_ip="127.0.0.1", local_port=25, helo="client.example", esmtp=True)
    ctx.begin_transaction("Q1")
    ctx.mail_from = "alice@example.org"
    ctx.recipient = "bob@localhost"
    return ctx


async def measure(pipe: Pipeline, calls: int, concurrency: int) -> dict[str, float]:
    ctx = context()
    run = pipe.run
    for _ in range(200):  # warm-up
        await run(HookPoint.RCPT_TO, ctx)
    perf = time.perf_counter
    lat = []
    for _ in range(calls):
        t0 = perf()
        await run(HookPoint.RCPT_TO, ctx)
        lat.append(perf() - t0)
    lat.sort()

    async def worker(n: int) -> None:
        c = context()
        for _ in range(n):
            await run(HookPoint.RCPT_TO, c)

    per = max(calls * 2 // concurrency, 1)
    t0 = perf()
    await asyncio.gather(*(worker(per) for _ in range(concurrency)))
    rate = per * concurrency / (perf() - t0)
    return {"p50_us": round(lat[len(lat) // 2] * 1e6, 1),
            "p99_us": round(lat[int(len(lat) * 0.99)] * 1e6, 1),
            "calls_per_s": round(rate)}


async def round_trip(calls: int, concurrency: int) -> dict[str, Any]:
    out: dict[str, Any] = {}

    def inprocess(ctx: HookContext) -> HookResult:
        return TAGGED

    pipe = Pipeline([make_link("inproc", HookPoint.RCPT_TO, inprocess, 100, 5.0,
                               FailurePolicy.CONTINUE)])
    out["in_process"] = await measure(pipe, calls, concurrency)
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("stream", "unary"):
            e = parse_entry(entry_dict(mode), "bench", PLUGIN.parent, "")
            h = ExternalHandle(e, PluginServices(hostname="bench", state_dir=Path(tmp)))
            await h.start()
            try:
                out[mode] = await measure(Pipeline(h.links()), calls, concurrency)
                assert h.info()["failures"] == 0, h.info()
            finally:
                await h.stop()
    return out


async def restart_time(times: int) -> dict[str, float]:
    """SIGKILL the plugin and time until it is ready again (the supervisor's restart)."""
    import os
    import signal

    took = []
    with tempfile.TemporaryDirectory() as tmp:
        e = parse_entry({**entry_dict("auto"), "max_restarts": times + 1}, "bench",
                        PLUGIN.parent, "")
        h = ExternalHandle(e, PluginServices(hostname="bench", state_dir=Path(tmp)))
        await h.start()
        sup = h.supervisor
        try:
            for _ in range(times):
                pid = sup.pid
                assert pid is not None
                t0 = time.perf_counter()
                os.kill(pid, signal.SIGKILL)
                while not (sup.state.value == "ready" and sup.pid not in (None, pid)):
                    await asyncio.sleep(0.002)
                took.append(time.perf_counter() - t0)
                await asyncio.sleep(0.2)
        finally:
            await h.stop()
    took.sort()
    return {"median_ms": round(statistics.median(took) * 1000, 1),
            "max_ms": round(took[-1] * 1000, 1)}


def smtp_throughput(messages: int, sessions: int, rounds: int) -> dict[str, Any]:
    from tests.bench.bench_smtp import drive
    from tests.support.server import ServerProcess, base_config

    with tempfile.TemporaryDirectory() as tmp:
        servers = {}
        for name, plugins in (("none", {"enabled": []}),
                              ("external_rcpt_to", {"enabled": [],
                                                    "external": [entry_dict("auto")]})):
            work = Path(tmp) / name
            work.mkdir()
            servers[name] = ServerProcess(base_config(work, plugins=plugins,
                                                      logging={"level": "warning"}), work)
        try:
            for srv in servers.values():
                srv.start()
                drive(srv.port, 300, sessions, 1024)  # warm-up
            rates: dict[str, list[float]] = {k: [] for k in servers}
            for _ in range(rounds):
                for name, srv in servers.items():
                    rates[name].append(drive(srv.port, messages, sessions, 1024))
        finally:
            for srv in servers.values():
                srv.stop()
    med = {k: round(statistics.median(v)) for k, v in rates.items()}
    return {"messages_per_s": med, "rounds": rates,
            "ratio_external_vs_none": round(med["external_rcpt_to"] / med["none"], 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--skip-smtp", action="store_true")
    a = ap.parse_args()
    try:
        import uvloop

        uvloop.install()  # as the server runs
    except ImportError:
        pass
    result: dict[str, Any] = {"round_trip": asyncio.run(round_trip(a.calls, a.concurrency))}
    result["restart_after_sigkill"] = asyncio.run(restart_time(5))
    rt = result["round_trip"]
    result["stream_vs_in_process_p50"] = round(rt["stream"]["p50_us"] / rt["in_process"]["p50_us"])
    result["stream_vs_unary_calls_per_s"] = round(
        rt["stream"]["calls_per_s"] / rt["unary"]["calls_per_s"], 2)
    if not a.skip_smtp:
        result["smtp"] = smtp_throughput(a.messages, a.sessions, a.rounds)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
