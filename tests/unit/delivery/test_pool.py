"""The connection cache: reuse limits, idle expiry, and no session handed out twice."""

from __future__ import annotations

import asyncio

from elemta_core.delivery.pool import ConnectionPool


class FakeSession:
    def __init__(self, slow_quit: float = 0.0) -> None:
        self.usable = True
        self.messages = 1
        self.slow_quit = slow_quit
        self.quits = 0

    async def quit(self) -> None:
        self.quits += 1
        await asyncio.sleep(self.slow_quit)
        self.usable = False

    def close(self) -> None:
        self.usable = False


async def test_reuse_limit_and_per_key_cap() -> None:
    pool = ConnectionPool(reuse=2, idle=10, per_key=1)
    a, b, c = FakeSession(), FakeSession(), FakeSession()
    pool.give("k", a)  # type: ignore[arg-type]
    pool.give("k", b)  # type: ignore[arg-type]  # over the per-key cap: closed
    c.messages = 2
    pool.give("j", c)  # type: ignore[arg-type]  # carried its share: closed
    await asyncio.sleep(0)
    assert pool.take("k") is a and pool.take("k") is None and pool.take("j") is None
    assert b.quits == 1 and c.quits == 1
    await pool.close()


async def test_idle_sessions_are_closed() -> None:
    pool = ConnectionPool(idle=0.1)
    s = FakeSession()
    pool.give("k", s)  # type: ignore[arg-type]
    await asyncio.sleep(0.3)
    assert s.quits == 1 and pool.take("k") is None
    await pool.close()


async def test_a_session_taken_while_the_reaper_closes_another_is_not_cached_again() -> None:
    pool = ConnectionPool(idle=0.2)
    old = FakeSession(slow_quit=0.2)
    pool.give("k", old)  # type: ignore[arg-type]
    await asyncio.sleep(0.15)
    fresh = FakeSession()
    pool.give("k", fresh)  # type: ignore[arg-type]
    await asyncio.sleep(0.1)  # the reaper is now closing ``old`` (a slow QUIT)
    assert pool.take("k") is fresh  # in use from here on
    await asyncio.sleep(0.3)
    assert pool.take("k") is None  # the reaper did not put it back
    assert old.quits == 1 and fresh.quits == 0
    await pool.close()
