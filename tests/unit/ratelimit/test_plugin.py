from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from builtin_plugins.ratelimit.backend import BackendError, KeyState, LeaseRequest, Verdict
from builtin_plugins.ratelimit.config import (
    Count,
    OnBackendError,
    Per,
    RateLimitConfig,
    Rule,
)
from builtin_plugins.ratelimit.gcra import Charge
from builtin_plugins.ratelimit.plugin import LEASE, RateLimitPlugin
from elemta_core.hooks.context import HookContext, SecurityEvent
from elemta_core.hooks.types import CONTINUE, Action, HookPoint, smtp_reply
from elemta_core.message.message import Message
from elemta_core.plugins.api import PluginServices


class Services(PluginServices):
    def __init__(self) -> None:
        super().__init__(hostname="mx.test", state_dir=Path("/nonexistent"),
                         registry=CollectorRegistry())
        self.events: list[tuple[HookPoint, SecurityEvent]] = []
        self.emit = lambda hook, ctx, ev: self.events.append((hook, ev))


def metric(services: PluginServices, name: str, **labels: str) -> float:
    assert services.registry is not None
    return services.registry.get_sample_value(name, labels) or 0.0


async def started(**kw: Any) -> tuple[RateLimitPlugin, Services]:
    kw.setdefault("allow", [])
    cfg = RateLimitConfig(**kw)
    for r in cfg.rules:
        r.validate()
    services = Services()
    plugin = RateLimitPlugin(cfg, services)
    await plugin.start()
    return plugin, services


async def test_concurrent_connections_limit_and_release() -> None:
    plugin, services = await started(max_connections_per_ip=2, connection_rate_per_minute=0)
    try:
        ctxs = [HookContext(f"s{i}", "203.0.113.9") for i in range(3)]
        assert await plugin.on_connect(ctxs[0]) is CONTINUE
        assert await plugin.on_connect(ctxs[1]) is CONTINUE
        refused = await plugin.on_connect(ctxs[2])
        assert refused.action is Action.TEMPFAIL
        reply = smtp_reply(refused)
        assert reply.startswith("421 4.7.0 ") and "retry after 30 seconds" in reply
        assert LEASE not in ctxs[2].extra
        assert services.events[-1][0] is HookPoint.RATE_LIMITED
        assert services.events[-1][1].data["limit"] == "connections"
        assert metric(services, "elemta_ratelimit_hits_total", limit="connections") == 1
        assert metric(services, "elemta_ratelimit_leases") == 2
        # The refused session's disconnect gives back nothing; a held one frees a slot.
        await plugin.on_disconnect(ctxs[2])
        await plugin.on_disconnect(ctxs[0])
        assert await plugin.on_connect(HookContext("s4", "203.0.113.9")) is CONTINUE
        assert metric(services, "elemta_ratelimit_leases") == 2
    finally:
        await plugin.stop()


async def test_connection_rate_hint_and_allow_deny_lists() -> None:
    plugin, services = await started(max_connections_per_ip=0, connection_rate_per_minute=3,
                                     allow=["192.0.2.0/24"], deny=["198.51.100.0/24"])
    try:
        results = [await plugin.on_connect(HookContext(f"s{i}", "203.0.113.1"))
                   for i in range(4)]
        assert [r.action for r in results] == [Action.CONTINUE] * 3 + [Action.TEMPFAIL]
        assert smtp_reply(results[-1]) == (
            "421 4.7.0 Too many connections from your address, retry after 20 seconds")
        for i in range(10):
            ctx = HookContext(f"a{i}", "192.0.2.1")
            assert await plugin.on_connect(ctx) is CONTINUE
        denied = await plugin.on_connect(HookContext("d", "198.51.100.4"))
        assert smtp_reply(denied).startswith("554 5.7.1 ")
        assert services.events[-1][0] is HookPoint.POLICY_VIOLATION
        assert metric(services, "elemta_ratelimit_denied_total") == 1
    finally:
        await plugin.stop()


async def test_message_recipient_and_byte_rules() -> None:
    plugin, services = await started(
        max_connections_per_ip=0, connection_rate_per_minute=0,
        rules=[Rule("sender-msgs", Per.SENDER, Count.MESSAGES, 2, "1h"),
               Rule("rcpts", Per.IP, Count.RECIPIENTS, 3, "1h"),
               Rule("bytes", Per.IP, Count.BYTES, 100, "1h")])
    try:
        ctx = HookContext("s", "203.0.113.2")
        await plugin.on_connect(ctx)
        ctx.mail_from = "a@example.org"
        assert await plugin.on_mail_from(ctx) is CONTINUE
        assert await plugin.on_mail_from(ctx) is CONTINUE
        r = await plugin.on_mail_from(ctx)
        assert smtp_reply(r) == ("451 4.7.1 Rate limit sender-msgs reached, "
                                 "retry after 1800 seconds")
        ctx.mail_from = "other@example.org"
        assert await plugin.on_mail_from(ctx) is CONTINUE
        outcomes = []
        for i in range(4):
            ctx.recipient = f"r{i}@dest.example"
            outcomes.append((await plugin.on_rcpt_to(ctx)).action)
        assert outcomes == [Action.CONTINUE] * 3 + [Action.TEMPFAIL]
        ctx.message = Message(b"x" * 60)
        assert await plugin.on_message(ctx) is CONTINUE
        r = await plugin.on_message(ctx)
        assert r.action is Action.TEMPFAIL and r.code == 451
        assert metric(services, "elemta_ratelimit_checks_total", hook="message") == 2
    finally:
        await plugin.stop()


class Failing:
    name = "redis"

    def __init__(self) -> None:
        self.calls = 0

    async def check(self, charges: Sequence[Charge],
                    lease: LeaseRequest | None = None) -> Verdict:
        self.calls += 1
        raise BackendError("connection refused")

    async def refresh(self, leases: Sequence[tuple[str, str]], ttl_ms: int) -> None:
        raise BackendError("connection refused")

    async def release(self, key: str, member: str) -> None:
        raise BackendError("connection refused")

    async def inspect(self, keys: Sequence[str]) -> dict[str, KeyState]:
        raise BackendError("connection refused")

    async def scan(self, prefix: str, limit: int) -> list[str]:
        raise BackendError("connection refused")

    async def delete(self, keys: Sequence[str]) -> int:
        raise BackendError("connection refused")

    async def close(self) -> None:
        pass


@pytest.mark.parametrize("policy", [OnBackendError.ALLOW, OnBackendError.TEMPFAIL])
async def test_backend_errors_apply_the_policy_and_back_off(policy: OnBackendError) -> None:
    plugin, services = await started(on_backend_error=policy, retry_interval=30.0)
    assert plugin.runtime is not None
    real, failing = plugin.runtime.backend, Failing()
    plugin.runtime.backend = failing
    try:
        results = [await plugin.on_connect(HookContext(f"s{i}", "203.0.113.3")) for i in range(5)]
        if policy is OnBackendError.ALLOW:
            assert all(r is CONTINUE for r in results)
        else:
            assert all(smtp_reply(r).startswith("421 4.3.0 ") for r in results)
        # Only the first check waited on the backend; the rest skipped it during the backoff.
        assert failing.calls == 1
        assert metric(services, "elemta_ratelimit_backend_errors_total", backend="memory",
                      policy=policy.value) == 5
        # Recovery: once the backoff is over the backend is asked again.
        plugin.runtime.backend = real
        plugin.runtime.down_until = 0.0
        assert await plugin.on_connect(HookContext("ok", "203.0.113.3")) is CONTINUE
    finally:
        plugin.runtime.backend = real
        await plugin.stop()


async def test_admin_show_and_reset() -> None:
    plugin, services = await started(
        max_connections_per_ip=5, connection_rate_per_minute=10,
        rules=[Rule("sender-msgs", Per.SENDER, Count.MESSAGES, 4, "1h")])
    try:
        ctx = HookContext("s", "203.0.113.4", mail_from="Bob@Example.org")
        await plugin.on_connect(ctx)
        await plugin.on_mail_from(ctx)
        await plugin.on_mail_from(ctx)
        show = services.admin_commands["ratelimit.show"]
        by_ip = {r["limit_name"]: r for r in (await show({"ip": "203.0.113.4"}))["counters"]}
        assert by_ip["connections"]["current"] == 1 and by_ip["connections"]["limit"] == 5
        assert by_ip["connection_rate"]["current"] == 1
        by_sender = (await show({"sender": "bob@example.org"}))["counters"]
        assert [(r["limit_name"], r["current"], r["limit"]) for r in by_sender] == [
            ("sender-msgs", 2, 4)]
        listed = await show({})
        assert len(listed["counters"]) == 3 and listed["backend"] == "memory"
        reset = services.admin_commands["ratelimit.reset"]
        assert (await reset({"sender": "bob@example.org"}))["deleted"] == 1
        assert (await show({"sender": "bob@example.org"}))["counters"][0]["current"] == 0
        with pytest.raises(ValueError, match="say what to reset"):
            await reset({})
        with pytest.raises(ValueError, match="unknown selector"):
            await show({"planet": "mars"})
        assert (await reset({"all": True}))["deleted"] == 2
    finally:
        await plugin.stop()


async def test_hooks_follow_the_config() -> None:
    plain = RateLimitPlugin(RateLimitConfig(), Services())
    assert set(plain.hooks()) == {HookPoint.CONNECT, HookPoint.DISCONNECT}
    cfg = RateLimitConfig(rules=[Rule("r", Per.AUTH_USER, Count.RECIPIENTS, 9)])
    assert set(RateLimitPlugin(cfg, Services()).hooks()) == {
        HookPoint.CONNECT, HookPoint.DISCONNECT, HookPoint.RCPT_TO}
    plugin = RateLimitPlugin(RateLimitConfig(enabled=False), Services())
    assert plugin.hooks() == {}
    await plugin.start()
    await plugin.stop()


async def test_reload_shares_counters_and_leases() -> None:
    first, services = await started(max_connections_per_ip=1, connection_rate_per_minute=0)
    ctx = HookContext("s", "203.0.113.8")
    assert await first.on_connect(ctx) is CONTINUE
    second = RateLimitPlugin(first.cfg, services)
    await second.start()
    await first.stop()
    try:
        refused = await second.on_connect(HookContext("t", "203.0.113.8"))
        assert refused.action is Action.TEMPFAIL
        await second.on_disconnect(ctx)  # the session began under the old instance
        assert await second.on_connect(HookContext("u", "203.0.113.8")) is CONTINUE
    finally:
        await second.stop()


async def test_client_gone_while_the_check_was_in_flight_frees_its_slot() -> None:
    plugin, _ = await started(max_connections_per_ip=1, connection_rate_per_minute=0)
    assert plugin.runtime is not None
    real = plugin.runtime.backend
    gate = asyncio.Event()

    class Slow:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        async def check(self, charges: Sequence[Charge],
                        lease: LeaseRequest | None = None) -> Verdict:
            await gate.wait()
            return await real.check(charges, lease)

    plugin.runtime.backend = Slow()  # type: ignore[assignment]
    try:
        ctx = HookContext("s", "203.0.113.7")
        pending = asyncio.create_task(plugin.on_connect(ctx))
        await asyncio.sleep(0)
        await plugin.on_disconnect(ctx)  # the session ended before the check answered
        gate.set()
        await pending
        assert LEASE not in ctx.extra and not plugin.runtime.keeper.live
        assert await plugin.on_connect(HookContext("t", "203.0.113.7")) is CONTINUE
    finally:
        plugin.runtime.backend = real
        await plugin.stop()


async def test_admin_commands_report_an_unreachable_backend_plainly() -> None:
    plugin, services = await started()
    assert plugin.runtime is not None
    real = plugin.runtime.backend
    plugin.runtime.backend = Failing()
    try:
        for cmd, args in (("ratelimit.show", {"ip": "192.0.2.1"}), ("ratelimit.reset",
                                                                    {"all": True})):
            with pytest.raises(OSError, match="backend unavailable: connection refused"):
                await services.admin_commands[cmd](args)
    finally:
        plugin.runtime.backend = real
        await plugin.stop()
