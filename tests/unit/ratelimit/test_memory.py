from __future__ import annotations

from builtin_plugins.ratelimit.backend import LEASE_LIMIT, LeaseRequest
from builtin_plugins.ratelimit.gcra import US, Charge
from builtin_plugins.ratelimit.memory import MemoryBackend


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0 * US

    def __call__(self) -> float:
        return self.now


async def test_exact_count_then_retry_hint() -> None:
    mem = MemoryBackend(Clock())
    c = Charge.per_period("k", "msgs", limit=5, period=60.0)
    results = [await mem.check([c]) for _ in range(8)]
    assert [r.allowed for r in results] == [True] * 5 + [False] * 3
    assert results[-1].denied == "msgs" and results[-1].retry_after == 12.0


async def test_all_or_nothing_across_charges_and_lease() -> None:
    mem = MemoryBackend(Clock())
    a = Charge.per_period("a", "a", limit=10, period=60.0)
    b = Charge.per_period("b", "b", limit=1, period=60.0)
    assert (await mem.check([a, b])).allowed
    v = await mem.check([a, b])
    assert not v.allowed and v.denied == "b"
    # "a" was not charged by the refused check: 9 more fit.
    assert sum([(await mem.check([a])).allowed for _ in range(10)]) == 9
    lease = LeaseRequest("l", "m1", limit=1, ttl_ms=1000)
    assert (await mem.check([], lease)).allowed
    v = await mem.check([Charge.per_period("c", "c", 5, 60.0)], LeaseRequest("l", "m2", 1, 1000))
    assert not v.allowed and v.denied == LEASE_LIMIT
    assert "c" not in mem.tats


async def test_leases_expire_unless_refreshed_and_never_resurrect() -> None:
    clock = Clock()
    mem = MemoryBackend(clock)
    for m in ("a", "b"):
        assert (await mem.check([], LeaseRequest("l", m, 2, 1000))).allowed
    assert not (await mem.check([], LeaseRequest("l", "c", 2, 1000))).allowed
    clock.now += 0.8 * US
    await mem.refresh([("l", "a")], 1000)  # only "a" is refreshed: "b" belongs to a dead node
    clock.now += 0.5 * US
    st = (await mem.inspect(["l"]))["l"]
    assert st.kind == "lease" and st.leases == 1
    assert (await mem.check([], LeaseRequest("l", "c", 2, 1000))).allowed
    await mem.release("l", "c")
    clock.now += 2 * US
    await mem.refresh([("l", "a")], 1000)  # expired: a refresh must not bring it back
    assert (await mem.inspect(["l"]))["l"].leases == 0


async def test_sweep_bounds_memory_and_scan_delete() -> None:
    clock = Clock()
    mem = MemoryBackend(clock)
    for i in range(50):
        await mem.check([Charge.per_period(f"p:{i}", "n", 10, 1.0)])
    assert len(await mem.scan("p:", 100)) == 50
    assert len(await mem.scan("p:", 7)) == 7
    clock.now += 10 * US
    await mem.check([Charge.per_period("other", "n", 10, 1.0)])
    assert list(mem.tats) == ["other"]
    assert await mem.delete(["other", "missing"]) == 1
