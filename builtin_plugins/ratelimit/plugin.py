"""The ``rate_limiter`` plugin: connection, message, recipient and byte limits at the SMTP edge.

Hooks and what each charges:

- ``connect``: deny list (554), allow list (exempt for the whole session), then one atomic
  check of the connection rate and a concurrent-connection lease (421 4.7.0 when refused);
- ``mail_from``: message rules per ip, sender, sender domain, authenticated user (451 4.7.1);
- ``rcpt_to``: recipient rules, and message rules per recipient domain (451 4.7.1);
- ``message``: byte rules, charged the message size (451 4.7.1 after DATA);
- ``disconnect``: gives the lease back (and a crashed node's leases expire by themselves).

Every refusal carries a retry hint, raises a ``rate_limited`` security event and counts in
``elemta_ratelimit_hits``. When the backend cannot answer, ``on_backend_error`` decides.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from typing import Any, ClassVar

from builtin_plugins.ratelimit import admin, runtime
from builtin_plugins.ratelimit.backend import LEASE_LIMIT, BackendError, Verdict
from builtin_plugins.ratelimit.config import Backend as BackendKind
from builtin_plugins.ratelimit.config import OnBackendError, RateLimitConfig
from builtin_plugins.ratelimit.gcra import Charge
from builtin_plugins.ratelimit.leases import Lease
from builtin_plugins.ratelimit.metrics import metrics_for
from builtin_plugins.ratelimit.redis_backend import RedisBackend
from builtin_plugins.ratelimit.rules import Client, Policy, Standing
from elemta_core.hooks.context import HookContext, SecurityEvent
from elemta_core.hooks.types import CONTINUE, Action, HookPoint, HookResult
from elemta_core.plugins.api import HookFn, Plugin, PluginServices

#: ``ctx.extra`` keys this plugin keeps per session.
LEASE = "ratelimit.lease"
EXEMPT = "ratelimit.exempt"
GONE = "ratelimit.gone"

#: A concurrent-connection slot frees when some session ends: there is no exact time to give.
CONNECTIONS_RETRY_HINT = 30

DENIED = HookResult(Action.REJECT, 554, "5.7.1", "Access denied", reason="rate_limiter deny list")

_TEXT = {
    LEASE_LIMIT: "Too many concurrent connections from your address",
    "connection_rate": "Too many connections from your address",
}


class RateLimitPlugin(Plugin):
    name = "rate_limiter"
    version = "1.0.0"
    description = "Connection, message, recipient and byte rate limits (memory or Redis/Valkey)"
    priority = 10
    config_section: ClassVar[str | None] = "rate_limiter"
    Config: ClassVar[type | None] = RateLimitConfig

    def __init__(self, config: RateLimitConfig | None, services: PluginServices) -> None:
        cfg = config if config is not None else RateLimitConfig()
        super().__init__(cfg, services)
        self.cfg = cfg
        self.policy = Policy(cfg)
        self.metrics = metrics_for(services.registry)
        self._checks = {hp: self.metrics.checks.labels(hp.value) for hp in (
            HookPoint.CONNECT, HookPoint.MAIL_FROM, HookPoint.RCPT_TO, HookPoint.MESSAGE)}
        self._errors = self.metrics.backend_errors.labels(cfg.backend.value,
                                                          cfg.on_backend_error.value)
        self.node = secrets.token_hex(6)
        self.runtime: runtime.Runtime | None = None
        self._last_warning = 0.0

    def hooks(self) -> dict[HookPoint, HookFn]:
        """Only the hooks the config needs: with no rules, MAIL/RCPT/DATA cost nothing."""
        if not self.cfg.enabled:
            return {}
        out = super().hooks()
        for hook, needed in ((HookPoint.MAIL_FROM, self.policy.mail_rules),
                             (HookPoint.RCPT_TO, self.policy.rcpt_rules),
                             (HookPoint.MESSAGE, self.policy.byte_rules)):
            if not needed:
                del out[hook]
        return out

    async def start(self) -> None:
        if not self.cfg.enabled:
            return
        self.runtime = await runtime.acquire(self.cfg)

        async def show(args: dict[str, Any]) -> dict[str, Any]:
            try:
                return await admin.show(self.policy, self._rt.backend, args)
            except BackendError as e:
                raise OSError(f"rate limit backend unavailable: {e}") from None

        async def reset(args: dict[str, Any]) -> dict[str, Any]:
            try:
                return await admin.reset(self.policy, self._rt.backend, args)
            except BackendError as e:
                raise OSError(f"rate limit backend unavailable: {e}") from None

        self.services.register_admin_command("ratelimit.show", show)
        self.services.register_admin_command("ratelimit.reset", reset)

    async def stop(self) -> None:
        if self.runtime is not None:
            rt, self.runtime = self.runtime, None
            await runtime.release(rt)

    @classmethod
    async def admin_offline(cls, config: RateLimitConfig | None, cmd: str,
                            args: dict[str, Any]) -> dict[str, Any]:
        """``show``/``reset`` straight on a shared store, for a CLI with no daemon running."""
        cfg = config if config is not None else RateLimitConfig()
        if cfg.backend is not BackendKind.REDIS:
            raise LookupError("the memory backend lives in the running daemon")
        handler = {"ratelimit.show": admin.show, "ratelimit.reset": admin.reset}.get(cmd)
        if handler is None:
            raise LookupError(f"unknown command {cmd!r}")
        backend = RedisBackend.from_config(cfg)
        try:
            return await handler(Policy(cfg), backend, args)
        except BackendError as e:
            raise OSError(f"cannot reach {cfg.redis_url}: {e}") from None
        finally:
            await backend.close()

    @property
    def _rt(self) -> runtime.Runtime:
        if self.runtime is None:
            raise LookupError("the rate limiter is not running")
        return self.runtime

    # -- hooks -------------------------------------------------------------------------------

    async def on_connect(self, ctx: HookContext) -> HookResult:
        client = self.policy.client(ctx.peer_ip)
        if client.standing is Standing.ALLOWED:
            ctx.extra[EXEMPT] = True
            return CONTINUE
        if client.standing is Standing.DENIED:
            self.metrics.denied.inc()
            self.services.security_event(HookPoint.POLICY_VIOLATION, ctx, SecurityEvent(
                "policy_violation", f"{ctx.peer_ip} is on the rate limiter's deny list",
                plugin=self.name, data={"limit": "deny", "ip": ctx.peer_ip}))
            return DENIED
        lease_id = f"{self.node}:{ctx.session_id}"
        charges, lease = self.policy.connect(client, lease_id)
        if not charges and lease is None:
            return CONTINUE
        charged, result = await self._check(HookPoint.CONNECT, ctx, client, charges, lease)
        if charged and lease is not None:
            held = Lease(lease.key, lease.member)
            if ctx.extra.get(GONE):
                # The client left while the check was in flight: its disconnect hook has run
                # already and found nothing to give back, so give the slot back now.
                await self._rt.keeper.release(held)
                return result
            ctx.extra[LEASE] = held
            self._rt.keeper.add(held)
            self.metrics.leases.inc()
        return result

    async def on_disconnect(self, ctx: HookContext) -> HookResult:
        ctx.extra[GONE] = True
        held = ctx.extra.pop(LEASE, None)
        if isinstance(held, Lease) and self.runtime is not None:
            self.metrics.leases.dec()
            await self.runtime.keeper.release(held)
        return CONTINUE

    async def on_mail_from(self, ctx: HookContext) -> HookResult:
        if ctx.extra.get(EXEMPT):
            return CONTINUE
        client = self.policy.client(ctx.peer_ip)
        charges = self.policy.mail_from(ctx, client)
        if not charges:
            return CONTINUE
        return (await self._check(HookPoint.MAIL_FROM, ctx, client, charges))[1]

    async def on_rcpt_to(self, ctx: HookContext) -> HookResult:
        if ctx.extra.get(EXEMPT) or ctx.recipient is None:
            return CONTINUE
        client = self.policy.client(ctx.peer_ip)
        charges = self.policy.rcpt_to(ctx, client, ctx.recipient)
        if not charges:
            return CONTINUE
        return (await self._check(HookPoint.RCPT_TO, ctx, client, charges))[1]

    async def on_message(self, ctx: HookContext) -> HookResult:
        if ctx.extra.get(EXEMPT) or ctx.message is None or not self.policy.byte_rules:
            return CONTINUE
        client = self.policy.client(ctx.peer_ip)
        charges = self.policy.message(ctx, client, ctx.message.size)
        if not charges:
            return CONTINUE
        return (await self._check(HookPoint.MESSAGE, ctx, client, charges))[1]

    # -- the check and its outcomes ----------------------------------------------------------

    async def _check(self, hook: HookPoint, ctx: HookContext, client: Client,
                     charges: list[Charge], lease: Any = None) -> tuple[bool, HookResult]:
        """``(charged, result)``: charged is True when the limits (and lease) were taken."""
        rt = self._rt
        self._checks[hook].inc()
        loop = asyncio.get_running_loop()
        if loop.time() < rt.down_until:
            return False, self._backend_failed(hook, "backend unavailable, retrying shortly")
        try:
            verdict = await rt.backend.check(charges, lease)
        except BackendError as e:
            rt.down_until = loop.time() + self.cfg.retry_interval
            return False, self._backend_failed(hook, str(e))
        if verdict.allowed:
            return True, CONTINUE
        return False, self._limited(hook, ctx, client, verdict)

    def _limited(self, hook: HookPoint, ctx: HookContext, client: Client,
                 verdict: Verdict) -> HookResult:
        name = verdict.denied or "limit"
        if name == LEASE_LIMIT:
            retry = CONNECTIONS_RETRY_HINT
        else:
            retry = max(1, math.ceil(verdict.retry_after))
        self.metrics.hits.labels(name).inc()
        self.services.security_event(HookPoint.RATE_LIMITED, ctx, SecurityEvent(
            "rate_limited", f"{name} reached for {client.address} at {hook.value}",
            plugin=self.name,
            data={"limit": name, "hook": hook.value, "ip": client.address,
                  "retry_after": str(retry)}))
        self.log.info("session=%s limit %s reached at %s for [%s]; retry after %ds",
                      ctx.session_id, name, hook.value, client.address, retry)
        text = _TEXT.get(name, f"Rate limit {name} reached")
        text = f"{text}, retry after {retry} seconds"
        if hook is HookPoint.CONNECT:
            return HookResult(Action.TEMPFAIL, 421, "4.7.0", text, reason=f"rate limit {name}")
        return HookResult(Action.TEMPFAIL, 451, "4.7.1", text, reason=f"rate limit {name}")

    def _backend_failed(self, hook: HookPoint, why: str) -> HookResult:
        self._errors.inc()
        now = time.monotonic()
        if now - self._last_warning > 5:
            self._last_warning = now
            self.log.warning("rate limit backend %s: %s; applying on_backend_error=%s",
                             self.cfg.backend.value, why, self.cfg.on_backend_error.value)
        if self.cfg.on_backend_error is OnBackendError.ALLOW:
            return CONTINUE
        retry = max(1, math.ceil(self.cfg.retry_interval))
        text = f"Rate limit service unavailable, retry after {retry} seconds"
        if hook is HookPoint.CONNECT:
            return HookResult(Action.TEMPFAIL, 421, "4.3.0", text, reason="rate limit backend down")
        return HookResult(Action.TEMPFAIL, 451, "4.3.0", text, reason="rate limit backend down")
