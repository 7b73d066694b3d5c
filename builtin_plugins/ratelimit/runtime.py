"""A backend and its lease keeper, shared by the plugin instances of one process.

A config reload starts a new plugin instance before stopping the old one; while both point at
the same store they share it, so in-memory counters and the leases of open connections carry
over the reload instead of being forgotten. The last instance to stop closes it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from builtin_plugins.ratelimit.backend import Backend, BackendError
from builtin_plugins.ratelimit.config import Backend as BackendKind
from builtin_plugins.ratelimit.config import RateLimitConfig
from builtin_plugins.ratelimit.leases import LeaseKeeper
from builtin_plugins.ratelimit.memory import MemoryBackend
from builtin_plugins.ratelimit.redis_backend import RedisBackend

log = logging.getLogger("elemta.plugin.rate_limiter")

Identity = tuple[object, ...]


@dataclass
class Runtime:
    identity: Identity
    backend: Backend
    keeper: LeaseKeeper
    users: int = 0
    #: Loop time until which checks skip a backend that just failed (see ``retry_interval``).
    down_until: float = 0.0


_SHARED: dict[Identity, Runtime] = {}


def identity(cfg: RateLimitConfig) -> Identity:
    if cfg.backend is BackendKind.MEMORY:
        return (cfg.backend, cfg.lease_ttl)
    return (cfg.backend, cfg.redis_url, cfg.redis_cluster, cfg.redis_username, cfg.redis_password, cfg.tls,
            cfg.redis_tls_ca, cfg.redis_tls_cert, cfg.redis_tls_key, cfg.redis_tls_verify,
            cfg.timeout_ms, cfg.lease_ttl)


async def acquire(cfg: RateLimitConfig) -> Runtime:
    ident = identity(cfg)
    rt = _SHARED.get(ident)
    if rt is None:
        backend: Backend
        if cfg.backend is BackendKind.MEMORY:
            backend = MemoryBackend()
        else:
            redis = RedisBackend.from_config(cfg)
            try:
                await redis.prepare()
            except BackendError as e:
                # Not fatal: the policy covers the outage and scripts load on first use.
                log.warning("rate limit backend %s unavailable at start (%s); "
                            "on_backend_error=%s applies until it answers",
                            cfg.redis_url, e, cfg.on_backend_error.value)
            backend = redis
        keeper = LeaseKeeper(backend, cfg.lease_ttl)
        keeper.start()
        rt = _SHARED[ident] = Runtime(ident, backend, keeper)
    rt.users += 1
    return rt


async def release(rt: Runtime) -> None:
    rt.users -= 1
    if rt.users > 0:
        return
    if _SHARED.get(rt.identity) is rt:
        del _SHARED[rt.identity]
    await rt.keeper.stop()
    await rt.backend.close()
