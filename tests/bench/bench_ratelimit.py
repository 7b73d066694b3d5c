"""Rate limiting: cost per check (memory vs Redis) and SMTP throughput with it on vs off.

    .venv/bin/python -m tests.bench.bench_ratelimit [--checks 20000] [--messages 300]
                                                     [--sessions 8] [--rounds 5]

Part 1 times the plugin's connect and disconnect hooks on the memory backend, then the
backends alone: a connect check (connection rate + a concurrent-connection
lease, one atomic step) plus its release (what every connection costs: two calls, so two round
trips on Redis), against the in-process store and against a real
``redis-server`` on loopback (sequential: one round trip each; and 64 in flight).
Part 2 starts three ``elemta serve`` processes in one run (limiter off; on with the memory
backend; on with the Redis backend), with limits far above the load so every check runs and
none refuses, and sends the same messages to each in turn, a new connection per message (so
each message pays the connect, disconnect and MAIL FROM checks). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from builtin_plugins.ratelimit.backend import LeaseRequest
from builtin_plugins.ratelimit.config import Backend, RateLimitConfig
from builtin_plugins.ratelimit.gcra import Charge
from builtin_plugins.ratelimit.memory import MemoryBackend
from builtin_plugins.ratelimit.plugin import RateLimitPlugin
from builtin_plugins.ratelimit.redis_backend import RedisBackend
from elemta_core.hooks.context import HookContext
from elemta_core.plugins.api import PluginServices
from tests.integration.ratelimit.clients import send
from tests.support.redis_server import RedisServer, start_server
from tests.support.server import ServerProcess, base_config

HIGH = 10_000_000


def connect_check(i: int) -> tuple[list[Charge], LeaseRequest]:
    ip = f"198.51.100.{i % 200}"
    rate = Charge.per_period(f"b:{{ip:{ip}}}:rate", "connection_rate", HIGH, 60.0)
    return [rate], LeaseRequest(f"b:{{ip:{ip}}}:conn", f"n:{i}", HIGH, 60_000)


async def per_check(n: int, redis: RedisServer) -> dict[str, float]:
    mem = MemoryBackend()
    t0 = time.perf_counter()
    for i in range(n):
        charges, lease = connect_check(i)
        mem.check_now(charges, lease)
        await mem.release(lease.key, lease.member)
    mem_us = (time.perf_counter() - t0) / n * 1e6

    plugin = RateLimitPlugin(RateLimitConfig(allow=[], max_connections_per_ip=HIGH,
                                             connection_rate_per_minute=HIGH),
                             PluginServices(hostname="bench", state_dir=Path(".")))
    await plugin.start()
    t0 = time.perf_counter()
    for i in range(n):
        ctx = HookContext(f"s{i}", f"198.51.100.{i % 200}")
        await plugin.on_connect(ctx)
        await plugin.on_disconnect(ctx)
    hooks_us = (time.perf_counter() - t0) / n * 1e6
    await plugin.stop()

    cfg = RateLimitConfig(backend=Backend.REDIS, redis_url=redis.url, timeout_ms=5000)
    rb = RedisBackend.from_config(cfg)
    await rb.prepare()
    m = max(1, n // 10)
    t0 = time.perf_counter()
    for i in range(m):
        charges, lease = connect_check(i)
        await rb.check(charges, lease)
        await rb.release(lease.key, lease.member)
    redis_seq_us = (time.perf_counter() - t0) / m * 1e6

    async def one(i: int) -> None:
        charges, lease = connect_check(i)
        await rb.check(charges, lease)
        await rb.release(lease.key, lease.member)

    sem = asyncio.Semaphore(64)

    async def bounded(i: int) -> None:
        async with sem:
            await one(i)

    t0 = time.perf_counter()
    await asyncio.gather(*(bounded(i) for i in range(m)))
    redis_par_us = (time.perf_counter() - t0) / m * 1e6
    await rb.close()
    return {
        "memory_us_per_check_and_release": round(mem_us, 2),
        "memory_us_per_connect_and_disconnect_hooks": round(hooks_us, 2),
        "redis_us_per_check_and_release_sequential": round(redis_seq_us, 1),
        "redis_us_per_check_and_release_64_in_flight": round(redis_par_us, 1),
        "redis_over_memory_sequential": round(redis_seq_us / mem_us, 1),
        "redis_over_memory_64_in_flight": round(redis_par_us / mem_us, 1),
    }


def server(workdir: Path, limiter: dict[str, Any] | None) -> ServerProcess:
    sections: dict[str, Any] = {"server": {"starttls": False, "max_connections": 5000},
                                "logging": {"level": "warning"}}
    if limiter is not None:
        sections["plugins"] = {"enabled": ["rate_limiter"]}
        sections["rate_limiter"] = {
            "allow": [], "max_connections_per_ip": HIGH, "connection_rate_per_minute": HIGH,
            "rules": [{"name": "per-sender", "per": "sender", "count": "messages",
                       "limit": HIGH, "period": "1h"}], **limiter}
    workdir.mkdir()
    return ServerProcess(base_config(workdir, **sections), workdir).start()


async def throughput(port: int, messages: int, sessions: int) -> float:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(messages):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            codes = await send(port, f"s{i % 50}@example.org", "bob@localhost")
            if codes != [250]:
                raise RuntimeError(f"message {i} refused: {codes}")

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(sessions)))
    return messages / (time.perf_counter() - t0)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-rl-") as tmp:
        root = Path(tmp)
        redis = start_server("redis", root / "redis")
        servers: dict[str, ServerProcess] = {}
        try:
            out: dict[str, Any] = {"per_check": await per_check(args.checks, redis)}
            servers = {
                "off": server(root / "off", None),
                "memory": server(root / "memory", {}),
                "redis": server(root / "redis-node", {"backend": "redis",
                                                      "redis_url": redis.url,
                                                      "timeout_ms": 5000}),
            }
            for srv in servers.values():  # warm-up
                await throughput(srv.port, 50, args.sessions)
            rates: dict[str, list[float]] = {k: [] for k in servers}
            for _ in range(args.rounds):
                for name, srv in servers.items():
                    rates[name].append(await throughput(srv.port, args.messages, args.sessions))
            med = {k: statistics.median(v) for k, v in rates.items()}
            out["smtp_msgs_per_s"] = {k: round(v, 1) for k, v in med.items()}
            out["smtp_memory_over_off"] = round(med["memory"] / med["off"], 3)
            out["smtp_redis_over_off"] = round(med["redis"] / med["off"], 3)
            out["setup"] = {"messages": args.messages, "sessions": args.sessions,
                            "rounds": args.rounds, "connection_per_message": True}
            return out
        finally:
            for srv in servers.values():
                srv.stop()
            redis.stop()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checks", type=int, default=20000)
    p.add_argument("--messages", type=int, default=300)
    p.add_argument("--sessions", type=int, default=8)
    p.add_argument("--rounds", type=int, default=5)
    a = p.parse_args()
    if min(a.checks, a.messages, a.sessions, a.rounds) <= 0:
        sys.exit("every count must be positive")
    print(json.dumps(asyncio.run(main(a)), indent=2))
