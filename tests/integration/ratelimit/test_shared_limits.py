"""Two real ``elemta serve`` nodes share one real Redis (and one real Valkey): one global limit."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from tests.integration.ratelimit.clients import Held, greet, send
from tests.support.redis_server import RedisServer
from tests.support.server import ServerProcess

pytestmark = pytest.mark.integration

_prefix = itertools.count()


def limiter(url: str, **kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        # A generous timeout: on a loaded CI machine a slow answer would apply the fail-open
        # policy and blur the exact counts these tests assert (the outage test lowers it).
        "backend": "redis", "redis_url": url, "allow": [], "timeout_ms": 3000,
        "retry_interval": 0.5, "lease_ttl": 1.5, "max_connections_per_ip": 0,
        "connection_rate_per_minute": 0, "key_prefix": f"t{time.time_ns()}-{next(_prefix)}",
    }
    body.update(kw)
    return body


def nodes(factory: Callable[..., ServerProcess], n: int, **rl: Any) -> list[ServerProcess]:
    return [factory(plugins={"enabled": ["rate_limiter"]}, server={"starttls": False},
                    rate_limiter=rl) for _ in range(n)]


async def test_concurrent_connections_exact_across_nodes_and_sigkill_expiry(
        kv_server: RedisServer, elemta_server: Callable[..., ServerProcess]) -> None:
    a, b = nodes(elemta_server, 2, **limiter(kv_server.url, max_connections_per_ip=5))
    held = Held()
    try:
        codes = await asyncio.gather(*(greet((a, b)[i % 2].port, held) for i in range(24)))
        assert codes.count(220) == 5 and codes.count(421) == 19
        await held.close()
        # Sessions end asynchronously on the servers: wait for their disconnect hooks.
        lease_key = f"{a.config['rate_limiter']['key_prefix']}:{{ip:127.0.0.1}}:conn"
        await wait_for_leases(kv_server.url, lease_key, 0)
        # Node a takes every slot, then dies by SIGKILL without a word to Redis.
        assert [await greet(a.port, held) for _ in range(5)] == [220] * 5
        assert await greet(b.port) == 421
        a.kill()
        t_kill = time.monotonic()
        assert await greet(b.port) == 421  # its leases still count: they have not expired yet
        deadline = t_kill + 1.5 + 3.0
        while await greet(b.port) != 220:
            assert time.monotonic() < deadline, "a killed node's connections never expired"
            await asyncio.sleep(0.1)
        assert time.monotonic() - t_kill >= 1.0  # not before the lease TTL (1.5 s, minus slack)
        got = [await greet(b.port, held) for _ in range(6)]
        assert got.count(220) == 5 and got[-1] == 421
    finally:
        await held.close()


async def test_connection_rate_and_messages_exact_across_nodes(
        kv_server: RedisServer, elemta_server: Callable[..., ServerProcess]) -> None:
    rules = [{"name": "per-sender", "per": "sender", "count": "messages", "limit": 15,
              "period": "1h"}]
    a, b = nodes(elemta_server, 2, **limiter(kv_server.url, connection_rate_per_minute=12,
                                             rules=rules))
    t0 = time.monotonic()
    codes = await asyncio.gather(*(greet((a, b)[i % 2].port) for i in range(40)))
    elapsed = time.monotonic() - t0
    # GCRA: a burst of 12, then one more per 5 s (the load normally takes well under 1 s).
    assert codes.count(220) == 12 + int(elapsed // 5), (elapsed, codes)
    assert codes.count(220) + codes.count(421) == 40

    # Messages: this client's connection rate is spent, so two more nodes share the same
    # counters (same Redis, same key prefix) with no connection limits.
    c, d = nodes(elemta_server, 2, **limiter(kv_server.url, rules=rules,
                                             key_prefix=a.config["rate_limiter"]["key_prefix"]))
    results = await asyncio.gather(*(send((c, d)[i % 2].port, "bulk@example.org",
                                          "bob@localhost", count=3) for i in range(16)))
    flat = [code for r in results for code in r]
    assert flat.count(250) == 15 and flat.count(451) == 33, flat
    assert len(c.wait_delivered("bob@localhost", 99, timeout=0.5)
               + d.wait_delivered("bob@localhost", 99, timeout=0.5)) <= 15

    shown = json.loads(c.cli("ratelimit", "show", "--sender", "bulk@example.org",
                             "--json").stdout)
    [row] = [r for r in shown["counters"] if r["limit_name"] == "per-sender"]
    assert shown["backend"] == "redis" and row["current"] == 15 and row["limit"] == 15
    assert "deleted 1" in d.cli("ratelimit", "reset", "--sender", "bulk@example.org").stdout
    assert await send(c.port, "bulk@example.org", "bob@localhost") == [250]
    # With no daemon running the CLI reads the shared store itself.
    c.stop()
    d.stop()
    offline = json.loads(c.cli("ratelimit", "show", "--sender", "bulk@example.org",
                               "--json").stdout)
    assert [r["current"] for r in offline["counters"] if r["limit_name"] == "per-sender"] == [1]


async def test_redis_down_and_back_under_load(
        redis_only: RedisServer, elemta_server: Callable[..., ServerProcess]) -> None:
    rl = limiter(redis_only.url, connection_rate_per_minute=10, timeout_ms=1000)
    allow = elemta_server(plugins={"enabled": ["rate_limiter"]}, server={"starttls": False},
                          rate_limiter={**rl, "on_backend_error": "allow"})
    tempfail = elemta_server(plugins={"enabled": ["rate_limiter"]}, server={"starttls": False},
                             rate_limiter={**rl, "on_backend_error": "tempfail"})
    ports = (allow.port, tempfail.port)
    codes = await asyncio.gather(*(greet(ports[i % 2]) for i in range(16)))
    assert codes.count(220) == 10

    redis_only.stop()
    # While Redis is down every session still gets an answer at once: the policy's.
    t0 = time.monotonic()
    down: dict[int, list[int]] = {p: [] for p in ports}
    for _ in range(3):
        batch = await asyncio.gather(*(greet(p) for p in ports for _ in range(5)))
        for i, code in enumerate(batch):
            down[ports[i // 5]].append(code)
        await asyncio.sleep(0.2)
    assert time.monotonic() - t0 < 8
    assert set(down[allow.port]) == {220}  # fail open: not limited while the store is gone
    assert set(down[tempfail.port]) == {421}  # fail closed: 421 4.3.0, the client retries
    assert "4.3.0" in await _greeting_text(tempfail.port)

    redis_only.start()  # empty: a restarted cache
    # Recovery needs no one: the tempfail node answers 220 again on its own.
    accepted = 0
    deadline = time.monotonic() + 10
    while True:
        code = await greet(tempfail.port)
        if code == 220:
            accepted += 1
            break
        assert time.monotonic() < deadline, "never recovered after Redis came back"
        await asyncio.sleep(0.2)
    # Let the fail-open node's back-off end too, then the shared limit applies again, exactly.
    allow.cli("ratelimit", "show", "--ip", "127.0.0.1")
    await asyncio.sleep(1.0)
    codes = await asyncio.gather(*(greet(ports[i % 2]) for i in range(20)))
    assert accepted + codes.count(220) == 10
    for srv in (allow, tempfail):
        assert "Traceback" not in srv.log()
    tempfail.signal(signal.SIGTERM)


async def test_hung_redis_never_hangs_a_session(
        elemta_server: Callable[..., ServerProcess]) -> None:
    hung = socket.socket()  # accepts connections, never answers
    hung.bind(("127.0.0.1", 0))
    hung.listen(64)
    try:
        url = f"redis://127.0.0.1:{hung.getsockname()[1]}/0"
        [srv] = nodes(elemta_server, 1, **limiter(url, timeout_ms=200, retry_interval=0.2,
                                                   connection_rate_per_minute=10,
                                                   on_backend_error="tempfail"))
        for _ in range(3):
            t0 = time.monotonic()
            assert (await _greeting_text(srv.port)).startswith("421 4.3.0 ")
            assert time.monotonic() - t0 < 2
            await asyncio.sleep(0.25)  # past the back-off: the backend is really asked again
    finally:
        hung.close()


async def wait_for_leases(url: str, key: str, count: int, timeout: float = 10) -> None:
    client = Redis.from_url(url)
    try:
        deadline = time.monotonic() + timeout
        while await client.zcard(key) != count:
            assert time.monotonic() < deadline, f"{key} never came to {count} leases"
            await asyncio.sleep(0.05)
    finally:
        await client.aclose()


async def _greeting_text(port: int) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        return (await asyncio.wait_for(reader.readline(), 5)).decode()
    finally:
        writer.close()
