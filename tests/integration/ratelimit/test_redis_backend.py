"""The Redis backend's scripts against real Redis and Valkey servers."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from builtin_plugins.ratelimit.backend import LEASE_LIMIT, BackendError, LeaseRequest
from builtin_plugins.ratelimit.config import Backend, RateLimitConfig
from builtin_plugins.ratelimit.gcra import Charge
from builtin_plugins.ratelimit.keys import key
from builtin_plugins.ratelimit.redis_backend import RedisBackend
from tests.support.redis_server import RedisServer, server_binary, start_cluster

pytestmark = pytest.mark.integration


def backend(url: str, **kw: object) -> RedisBackend:
    kw.setdefault("timeout_ms", 3000)  # a loaded CI machine must not turn into a false outage
    cfg = RateLimitConfig(backend=Backend.REDIS, redis_url=url, **kw)  # type: ignore[arg-type]
    cfg.validate()
    return RedisBackend.from_config(cfg)


async def test_two_nodes_share_one_exact_limit(kv_server: RedisServer) -> None:
    nodes = [backend(kv_server.url), backend(kv_server.url)]
    try:
        await nodes[0].prepare()
        k = key("t", "sender", f"exact-{time.time()}@x", "msgs")
        charge = Charge.per_period(k, "msgs", limit=37, period=3600.0)
        verdicts = await asyncio.gather(*(nodes[i % 2].check([charge]) for i in range(200)))
        assert sum(v.allowed for v in verdicts) == 37
        refused = [v for v in verdicts if not v.allowed]
        assert all(v.denied == "msgs" and 0 < v.retry_after <= 3600 / 37 + 1 for v in refused)
        ttl = await nodes[0].client.pttl(k)
        assert 0 < ttl <= 3600 * 1000 + 1
    finally:
        for n in nodes:
            await n.close()


async def test_leases_limit_expire_and_refresh(kv_server: RedisServer) -> None:
    a, b = backend(kv_server.url), backend(kv_server.url)
    try:
        lk = key("t", "ip", f"lease-{time.time()}", "conn")
        got = await asyncio.gather(*(
            (a if i % 2 else b).check([], LeaseRequest(lk, f"m{i}", 3, 400)) for i in range(10)))
        assert sum(v.allowed for v in got) == 3
        assert {v.denied for v in got if not v.allowed} == {LEASE_LIMIT}
        held = [f"m{i}" for i, v in enumerate(got) if v.allowed]
        # Node a keeps refreshing its first lease; the others' owner "died".
        for _ in range(4):
            await asyncio.sleep(0.15)
            await a.refresh([(lk, held[0])], 400)
        st = (await a.inspect([lk]))[lk]
        assert st.kind == "lease" and st.leases == 1
        assert (await a.check([], LeaseRequest(lk, "new", 3, 400))).allowed
        await a.release(lk, "new")
        await asyncio.sleep(0.5)
        await a.refresh([(lk, held[0])], 400)  # expired: not brought back
        assert (await a.inspect([lk]))[lk].leases == 0
        assert await a.client.pttl(lk) == -2  # the whole set expired: no garbage left
    finally:
        await a.close()
        await b.close()


async def test_all_or_nothing_and_subjects_in_one_round_trip(kv_server: RedisServer) -> None:
    r = backend(kv_server.url)
    try:
        stamp = time.time()
        ip = key("t", "ip", f"10.0.0.{stamp}", "rate")
        lk = key("t", "ip", f"10.0.0.{stamp}", "conn")
        sender = key("t", "sender", f"s{stamp}@x", "msgs")
        ok = await r.check([Charge.per_period(ip, "rate", 5, 60.0),
                            Charge.per_period(sender, "msgs", 1, 60.0)],
                           LeaseRequest(lk, "m1", 1, 10_000))
        assert ok.allowed
        # The lease is full: the rate key of the same subject is not charged either.
        v = await r.check([Charge.per_period(ip, "rate", 5, 60.0)],
                          LeaseRequest(lk, "m2", 1, 10_000))
        assert not v.allowed and v.denied == LEASE_LIMIT
        states = await r.inspect([ip, lk, sender, "t:nothing"])
        assert states[lk].leases == 1 and states["t:nothing"].kind == "none"
        assert states[ip].tat_us is not None
        assert round((states[ip].tat_us - states[ip].now_us) / 12e6) == 1  # one charge
        assert sorted(await r.scan(f"t:{{ip:10.0.0.{stamp}", 10)) == sorted([ip, lk])
        assert await r.delete([ip, lk, sender]) == 3
    finally:
        await r.close()


async def test_checks_spanning_subjects_stay_exact_under_concurrency(
        kv_server: RedisServer) -> None:
    nodes = [backend(kv_server.url), backend(kv_server.url)]
    try:
        stamp = time.time()
        charges = [Charge.per_period(key("t", "sender", f"s{i}-{stamp}@x", "m"), "m", 5, 3600.0)
                   for i in range(6)]
        lk = key("t", "ip", f"span{stamp}", "conn")
        verdicts = await asyncio.gather(*(
            nodes[i % 2].check(charges, LeaseRequest(lk, f"m{i}", 100, 10_000))
            for i in range(40)))
        assert sum(v.allowed for v in verdicts) == 5
        states = await nodes[0].inspect([c.key for c in charges] + [lk])
        assert states[lk].leases == 5
        # Every subject was charged exactly 5 times (GCRA: 5 emission intervals of 720 s).
        assert [round(((states[c.key].tat_us or 0.0) - states[c.key].now_us) / 720e6)
                for c in charges] == [5] * len(charges)
    finally:
        for n in nodes:
            await n.close()


async def test_scripts_reload_after_flush(kv_server: RedisServer) -> None:
    r = backend(kv_server.url)
    try:
        await r.prepare()
        await r.client.script_flush()
        k = key("t", "ip", f"flush-{time.time()}", "rate")
        assert (await r.check([Charge.per_period(k, "rate", 2, 60.0)])).allowed
        await r.client.script_flush()
        other = key("t", "ip", f"flush2-{time.time()}", "rate")
        assert (await r.check([Charge.per_period(k, "rate", 2, 60.0),
                               Charge.per_period(other, "rate", 2, 60.0)])).allowed
        assert not (await r.check([Charge.per_period(k, "rate", 2, 60.0)])).allowed
    finally:
        await r.close()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers (a hung server)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    yield s.getsockname()[1]
    s.close()


async def test_down_or_hung_server_fails_fast(silent_port: int, tmp_path: Path) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    dead = closed.getsockname()[1]
    closed.close()
    for port in (dead, silent_port):
        r = backend(f"redis://127.0.0.1:{port}/0", timeout_ms=200)
        t0 = time.monotonic()
        with pytest.raises(BackendError):
            await r.check([Charge.per_period("t:{x}:r", "r", 1, 1.0)])
        assert time.monotonic() - t0 < 1.0
        await r.close()


async def test_restart_recovers_by_itself(redis_only: RedisServer) -> None:
    r = backend(redis_only.url, timeout_ms=300)
    try:
        k = key("t", "ip", "restart", "rate")
        charge = Charge.per_period(k, "rate", 100, 60.0)
        assert (await r.check([charge])).allowed
        redis_only.stop()
        with pytest.raises(BackendError):
            await r.check([charge])
        redis_only.start()
        # Same client: reconnects, finds no scripts (NOSCRIPT), loads them, answers.
        assert (await r.check([charge])).allowed
    finally:
        await r.close()


async def test_password_is_required_and_used(tmp_path: Path) -> None:
    srv = RedisServer(server_binary("redis"), tmp_path,
                      extra_args=("--requirepass", "s3cret")).start()
    try:
        k = key("t", "ip", "auth", "rate")
        anonymous = backend(srv.url)
        with pytest.raises(BackendError, match="(?i)auth"):
            await anonymous.check([Charge.per_period(k, "rate", 1, 60.0)])
        await anonymous.close()
        authed = backend(srv.url, redis_password="s3cret")
        assert (await authed.check([Charge.per_period(k, "rate", 1, 60.0)])).allowed
        await authed.close()
    finally:
        srv.stop()


async def test_tls_with_a_pinned_ca(tmp_path: Path) -> None:
    from elemta_core.smtp.tls import generate_self_signed

    cert, key_file = tmp_path / "redis.crt", tmp_path / "redis.key"
    generate_self_signed(cert, key_file, "127.0.0.1")
    srv = RedisServer(server_binary("redis"), tmp_path / "srv", tls=(cert, key_file)).start()
    try:
        k = key("t", "ip", "tls", "rate")
        verified = backend(srv.url, redis_tls_ca=str(cert))
        assert (await verified.check([Charge.per_period(k, "rate", 1, 60.0)])).allowed
        await verified.close()
        # Without the CA the server's certificate is not trusted: a backend error, not a hang.
        untrusted = backend(srv.url)
        with pytest.raises(BackendError):
            await untrusted.check([Charge.per_period(k, "rate", 1, 60.0)])
        await untrusted.close()
        # Plain TCP to the TLS port fails the same way.
        plain = backend(srv.url.replace("rediss://", "redis://"))
        with pytest.raises(BackendError):
            await plain.check([Charge.per_period(k, "rate", 1, 60.0)])
        await plain.close()
    finally:
        srv.stop()


async def test_redis_cluster_subjects_on_different_nodes(tmp_path: Path) -> None:
    nodes = start_cluster(tmp_path)
    try:
        a = backend(nodes[0].url, redis_cluster=True)
        b = backend(nodes[2].url, redis_cluster=True)
        await a.prepare()
        stamp = time.time()
        # Subjects spread over the cluster's slots (and so over its three nodes).
        subjects = [f"s{i}-{stamp}@x" for i in range(6)]
        charges = [Charge.per_period(key("t", "sender", s, "msgs"), "msgs", 5, 3600.0)
                   for s in subjects]
        lk = key("t", "ip", f"c{stamp}", "conn")
        verdicts = await asyncio.gather(*(
            (a, b)[i % 2].check(charges, LeaseRequest(lk, f"m{i}", 100, 10_000))
            for i in range(12)))
        # Atomic per subject only: concurrent checks may over-count refused attempts, so
        # between 1 and 5 pass; never more than the limit.
        assert 1 <= sum(v.allowed for v in verdicts) <= 5
        states = await a.inspect([c.key for c in charges] + [lk])
        assert all(states[c.key].kind == "rate" for c in charges)
        assert states[lk].leases >= 1
        assert len(await b.scan("t:", 100)) >= len(charges) + 1
        # A node that lost its scripts gets them back for the calls it refused.
        for n in nodes:
            await (await _plain(n)).script_flush()
        more = [Charge.per_period(key("t", "sender", f"n{i}-{stamp}@x", "m"), "m", 1, 60.0)
                for i in range(4)]
        assert (await a.check(more)).allowed
        assert not (await b.check(more[:1])).allowed
        assert await a.delete([c.key for c in charges + more] + [lk]) == len(charges) + 5
        await a.close()
        await b.close()
    finally:
        for n in nodes:
            n.stop()


async def _plain(srv: RedisServer) -> Any:
    from redis.asyncio import Redis

    return Redis.from_url(srv.url)
