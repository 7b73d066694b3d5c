"""The memory backend in one real ``elemta serve``: the same exact limits, no server needed."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.ratelimit.clients import Held, greet, send
from tests.support.server import ServerProcess

pytestmark = pytest.mark.integration


def node(factory: Callable[..., ServerProcess], **rl: Any) -> ServerProcess:
    body: dict[str, Any] = {"allow": [], "max_connections_per_ip": 0,
                            "connection_rate_per_minute": 0}
    body.update(rl)
    return factory(plugins={"enabled": ["rate_limiter"]}, server={"starttls": False},
                   rate_limiter=body)


def counters(srv: ServerProcess, *selector: str) -> dict[str, Any]:
    out = json.loads(srv.cli("ratelimit", "show", *selector, "--json").stdout)
    return {r["limit_name"]: r for r in out["counters"]}


async def test_concurrent_connections_and_rate_exact(
        elemta_server: Callable[..., ServerProcess]) -> None:
    srv = node(elemta_server, max_connections_per_ip=5, connection_rate_per_minute=20)
    held = Held()
    try:
        codes = await asyncio.gather(*(greet(srv.port, held) for _ in range(16)))
        assert codes.count(220) == 5 and codes.count(421) == 11
        shown = counters(srv, "--ip", "127.0.0.1")
        assert shown["connections"]["current"] == 5
        assert shown["connection_rate"]["current"] == 5  # refused attempts are not charged
        await held.close()
        deadline = time.monotonic() + 10
        while counters(srv, "--ip", "127.0.0.1")["connections"]["current"]:
            assert time.monotonic() < deadline, "disconnects never gave the slots back"
            await asyncio.sleep(0.1)
        t0 = time.monotonic()
        # One at a time, so only the rate limit is at play (30 at once would also meet the
        # concurrency cap of 5, and how many overlap depends on the machine's load).
        codes = [await greet(srv.port) for _ in range(30)]
        # 20 per minute: 15 of the burst are left, then one per 3 s.
        assert codes.count(220) == 15 + int((time.monotonic() - t0) // 3), codes
        assert "retry after" in await first_line(srv.port)
    finally:
        await held.close()


async def test_message_rules_deny_list_show_and_reset(
        elemta_server: Callable[..., ServerProcess]) -> None:
    rules = [{"name": "per-sender", "per": "sender", "count": "messages", "limit": 15,
              "period": "1h"},
             {"name": "rcpt-domain", "per": "recipient_domain", "count": "recipients",
              "limit": 100, "period": "1h"}]
    srv = node(elemta_server, rules=rules, deny=["10.0.0.0/8"])
    results = await asyncio.gather(*(send(srv.port, "bulk@example.org", "bob@localhost", 3)
                                     for _ in range(16)))
    flat = [c for r in results for c in r]
    assert flat.count(250) == 15 and flat.count(451) == 33, flat
    assert len(srv.wait_delivered("bob@localhost", 15)) == 15
    shown = counters(srv, "--sender", "bulk@example.org")
    assert shown["per-sender"]["current"] == 15
    assert counters(srv, "--domain", "localhost")["rcpt-domain"]["current"] == 15
    assert "deleted 1" in srv.cli("ratelimit", "reset", "--sender", "bulk@example.org").stdout
    assert await send(srv.port, "bulk@example.org", "bob@localhost") == [250]
    listing = json.loads(srv.cli("ratelimit", "show", "--json").stdout)
    assert listing["backend"] == "memory" and len(listing["counters"]) == 2
    bad = srv.cli("ratelimit", "reset", check=False)
    assert bad.returncode == 2 and "say what to reset" in bad.stderr


async def test_restart_after_sigkill_starts_from_zero(
        elemta_server: Callable[..., ServerProcess]) -> None:
    srv = node(elemta_server, max_connections_per_ip=3)
    held = Held()
    try:
        assert [await greet(srv.port, held) for _ in range(4)] == [220, 220, 220, 421]
        srv.kill()
        await held.close()
        srv.start()
        assert [await greet(srv.port, held) for _ in range(4)] == [220, 220, 220, 421]
    finally:
        await held.close()


async def first_line(port: int) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        return (await asyncio.wait_for(reader.readline(), 5)).decode()
    finally:
        writer.close()
