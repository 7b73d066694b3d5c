"""AuthRuntime.check: a check whose DNS answers are cached runs on the event loop, any other
in a worker thread, with the same result either way."""

from __future__ import annotations

import threading
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
