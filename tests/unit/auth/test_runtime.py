"""AuthRuntime.check: a check whose DNS answers are cached runs on the event loop, any other
in a worker thread, with the same result either way."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator

import pytest

from builtin_plugins.auth.dkim_sign import Signer
from builtin_plugins.auth.dkim_verify import INLINE_MAX_BYTES, verify_dkim
from builtin_plugins.auth.keys import KeyType, generate
from builtin_plugins.auth.runtime import AuthRuntime
from builtin_plugins.auth.spf import SpfResult, check_spf
from elemta_core.dns import CachedLookups, DnsConfig, NotCached, Queries, Resolver
from tests.support.dns_server import ZoneServer
from tests.unit.auth.test_dkim import MSG, publish, sign


@pytest.fixture
async def runtime(zone: ZoneServer) -> AsyncIterator[AuthRuntime]:
    r = Resolver(DnsConfig(nameservers=[zone.address], timeout=0.3, lifetime=0.6))
    rt = AuthRuntime(None, 2, resolver=r)
    await rt.start()
    yield rt
    await rt.stop()
    await r.close()


async def test_inline_when_cached_else_in_a_thread(zone: ZoneServer,
                                                   runtime: AuthRuntime) -> None:
    zone.txt("example.org", "v=spf1 -all")
    loop_thread = threading.get_ident()
    ran_on: list[int] = []

    def fn(dns: Queries) -> tuple[object, ...]:
        ran_on.append(threading.get_ident())
        return dns.query("example.org", "TXT").records

    first = await runtime.check(fn)  # a miss on the loop, then again in a thread
    assert ran_on[0] == loop_thread and ran_on[1] != loop_thread and len(ran_on) == 2
    ran_on.clear()
    assert await runtime.check(fn) == first == (b"v=spf1 -all",)
    assert ran_on == [loop_thread]  # cached: no hand-off
    ran_on.clear()
    assert await runtime.check(fn, inline=False) == first
    assert len(ran_on) == 1 and ran_on[0] != loop_thread


async def test_a_swallowed_miss_still_sends_the_check_to_a_thread(
        zone: ZoneServer, runtime: AuthRuntime) -> None:
    zone.txt("example.org", "v=spf1 -all")

    def fn(dns: Queries) -> str:
        try:
            dns.query("example.org", "TXT")
        except NotCached:
            return "guessed"  # as pyspf does with an exp= lookup that fails
        return "looked up"

    assert await runtime.check(fn) == "looked up"


async def test_spf_inline_and_threaded_agree(zone: ZoneServer, runtime: AuthRuntime) -> None:
    zone.txt("example.org", "v=spf1 include:_spf.example.org -all exp=why.example.org")
    zone.txt("_spf.example.org", "v=spf1 ip4:192.0.2.0/24 ~all")
    zone.txt("why.example.org", "%{i} may not send for %{d}")
    # Only the first record cached: the include is a miss, the exp= one pyspf swallows.
    await runtime.resolver.query("example.org", "TXT")
    for ip in ("192.0.2.1", "198.51.100.7"):
        got = await runtime.check(
            lambda dns, ip=ip: check_spf(dns, ip, "a@example.org", "h.example.org", "mx"))
        threaded = await runtime.run(check_spf, runtime.sync, ip, "a@example.org",
                                     "h.example.org", "mx")
        inline = check_spf(CachedLookups(runtime.resolver), ip, "a@example.org", "h.example.org", "mx")
        assert got == threaded == inline
    assert got.result is SpfResult.FAIL and "198.51.100.7 may not send" in got.explanation


async def test_dkim_inline_and_threaded_agree(zone: ZoneServer, runtime: AuthRuntime) -> None:
    for key_type in KeyType:
        key = generate(key_type, 1024)[1] if key_type is KeyType.RSA else generate(key_type)[1]
        publish(zone, key_type.value, key)
        raw = sign(MSG, Signer("example.org", key_type.value, key))
        threaded = await runtime.run(verify_dkim, raw, runtime.sync)
        inline = verify_dkim(raw, CachedLookups(runtime.resolver))
        assert inline == threaded and threaded[0].result.value == "pass"


async def test_large_messages_are_verified_in_a_thread(zone: ZoneServer,
                                                       runtime: AuthRuntime) -> None:
    from builtin_plugins.auth.config import AuthConfig
    from builtin_plugins.auth.dkim_verify import run_verify_dkim

    key = generate(KeyType.ED25519)[1]
    publish(zone, "s1", key)
    big = MSG + b"x" * INLINE_MAX_BYTES + b"\r\n"
    raw = sign(big, Signer("example.org", "s1", key))
    await runtime.resolver.query("s1._domainkey.example.org", "TXT")  # cached, yet:
    handed_off: list[object] = []
    original = runtime.run

    async def spy(fn, *args):  # type: ignore[no-untyped-def]
        handed_off.append(fn)
        return await original(fn, *args)

    runtime.run = spy  # type: ignore[method-assign]
    [res] = await run_verify_dkim(runtime, raw, AuthConfig())
    assert res.result.value == "pass" and len(handed_off) == 1


async def test_memo_lasts_as_long_as_the_answers_it_used(zone: ZoneServer,
                                                         runtime: AuthRuntime) -> None:
    zone.txt("example.org", "v=spf1 -all")
    zone.txt("other.example", "v=spf1 +all")
    runs: list[str] = []

    def fn(dns: Queries) -> tuple[object, ...]:
        runs.append("ran")
        return (dns.query("example.org", "TXT").records, dns.query("other.example", "TXT").records)

    first = await runtime.check(fn, memo="k")  # a miss: computed in a thread, not kept
    await runtime.check(fn, memo="k")  # from the cache: kept
    n = len(runs)
    assert await runtime.check(fn, memo="k") == first and len(runs) == n  # the memo answered
    assert runtime.memo_hits == 1
    await runtime.check(fn, memo="other key")
    assert len(runs) == n + 1  # another key is another check
    # the memo lasts until the first of the answers it used expires
    r = runtime.resolver
    r.flush()
    await runtime.check(fn, memo="k")  # a miss again: fetched, not kept
    hit = r.cached_until("other.example", "TXT")
    assert hit is not None
    r._answers[("other.example", "TXT")] = (time.time() + 0.3, hit[1])
    runs.clear()
    await runtime.check(fn, memo="k")  # computed from the cache: kept for 0.3 s
    await runtime.check(fn, memo="k")
    assert runs == ["ran"]
    await asyncio.sleep(0.35)
    await runtime.check(fn, memo="k")
    assert len(runs) > 1  # expired with its answer: computed again
    # a flushed cache (a zone was rewritten) forgets every memo
    await runtime.check(fn, memo="k")
    await runtime.check(fn, memo="k")  # kept again
    runs.clear()
    await runtime.check(fn, memo="k")
    assert runs == []
    r.flush()
    await runtime.check(fn, memo="k")
    assert runs  # computed again


async def test_spf_results_are_memoised_per_identity(zone: ZoneServer,
                                                    runtime: AuthRuntime) -> None:
    zone.txt("example.org", "v=spf1 ip4:192.0.2.0/24 -all")
    for _ in range(3):
        chk = await runtime.check(
            lambda dns: check_spf(dns, "192.0.2.1", "a@example.org", "h.example", "mx"),
            memo=("spf", "192.0.2.1", "a@example.org", "h.example", "mx"))
        assert chk.result is SpfResult.PASS
    assert runtime.memo_hits == 1  # miss (thread), cached run (kept), then the memo
