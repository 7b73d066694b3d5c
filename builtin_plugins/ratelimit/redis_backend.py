"""The shared store: Redis or Valkey through redis-py's asyncio client.

Every check is one round trip: one ``EVALSHA`` of :data:`~builtin_plugins.ratelimit.scripts.CHECK`
over all its keys, atomic, so concurrent nodes never admit more than a limit. Keys carry a
cluster hash tag per subject (an address, a sender …); on a Redis Cluster a script may only
touch one slot, so there a check spanning subjects sends one ``EVALSHA`` per subject, all at
once: each is atomic, and a refusal by one subject may leave the others charged (an attempt
is over-counted, never a message admitted beyond a limit). Scripts are loaded once and called by hash;
after a server restart (``NOSCRIPT``) they are loaded again and the call repeated, which is safe
because a missing script changed nothing. Every call is bounded by ``timeout``: past it, or on
any connection error, :class:`BackendError` is raised and the plugin applies its policy.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError

from builtin_plugins.ratelimit.backend import (
    ALLOWED,
    LEASE_LIMIT,
    BackendError,
    KeyState,
    LeaseRequest,
    Verdict,
)
from builtin_plugins.ratelimit.config import RateLimitConfig
from builtin_plugins.ratelimit.gcra import US, Charge
from builtin_plugins.ratelimit.keys import hash_tag
from builtin_plugins.ratelimit.scripts import ALL, CHECK, INSPECT, REFRESH, Script

T = TypeVar("T")

#: ``show`` and ``reset`` may walk many keys: they are not on an SMTP session's path.
ADMIN_TIMEOUT = 10.0


def client_from_config(cfg: RateLimitConfig) -> Redis | RedisCluster:
    """A client for ``redis_url`` with the section's credentials, TLS and timeouts."""
    timeout = cfg.timeout_ms / 1000
    kw: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),  # see RedisBackend._bounded for the one retry we do
        "health_check_interval": 0,
        "client_name": "elemta-ratelimit",
    }
    if cfg.redis_username:
        kw["username"] = cfg.redis_username
    if cfg.redis_password:
        kw["password"] = cfg.redis_password
    url = cfg.redis_url
    if cfg.tls:
        if url.startswith("redis://"):
            url = "rediss://" + url.removeprefix("redis://")
        kw["ssl_cert_reqs"] = ssl.CERT_REQUIRED if cfg.redis_tls_verify else ssl.CERT_NONE
        kw["ssl_check_hostname"] = cfg.redis_tls_verify
        if cfg.redis_tls_ca:
            kw["ssl_ca_certs"] = cfg.redis_tls_ca
        if cfg.redis_tls_cert:
            kw["ssl_certfile"] = cfg.redis_tls_cert
            kw["ssl_keyfile"] = cfg.redis_tls_key
    if cfg.redis_cluster:
        return RedisCluster.from_url(url, **kw)
    return Redis.from_url(url, **kw)


def _group(keys: Sequence[str]) -> dict[str, list[int]]:
    """Indexes of ``keys`` by cluster hash tag, in first-seen order."""
    groups: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        groups.setdefault(hash_tag(k), []).append(i)
    return groups


class RedisBackend:
    name = "redis"

    def __init__(self, client: Redis | RedisCluster, timeout: float) -> None:
        self.client = client
        self.timeout = timeout
        self.cluster = isinstance(client, RedisCluster)
        # redis-py's cluster client breaks when many tasks trigger its first topology
        # discovery at once: it is done once, under a lock, before any command.
        self._discovered = not self.cluster
        self._discovery = asyncio.Lock()

    @classmethod
    def from_config(cls, cfg: RateLimitConfig) -> RedisBackend:
        return cls(client_from_config(cfg), cfg.timeout_ms / 1000)

    async def prepare(self) -> None:
        """Load the scripts now (at start), so the first checks need no ``NOSCRIPT`` detour."""
        await self._bounded(self.load_scripts)

    async def load_scripts(self) -> None:
        for script in ALL:
            sha = await self.client.script_load(script.source)
            if sha != script.sha:
                raise BackendError(f"server hashed script {script.name} as {sha}")

    async def _bounded(self, call: Callable[[], Awaitable[T]], timeout: float | None = None) -> T:
        """``call()`` within ``timeout``; store trouble becomes :class:`BackendError`.

        After a server restart every idle pooled connection is dead and would fail once
        each: on a connection error the idle ones are dropped and the call made once more on
        a fresh connection. Anything longer is an outage, for the plugin's policy.
        """
        limit = timeout or self.timeout
        try:
            async with asyncio.timeout(limit):
                if not self._discovered:
                    await self._discover()
                try:
                    return await call()
                except RedisConnectionError:
                    if isinstance(self.client, Redis):
                        await self.client.connection_pool.disconnect(inuse_connections=False)
                    return await call()
        except TimeoutError:
            raise BackendError(f"no answer within {limit * 1000:.0f} ms") from None
        except (RedisError, OSError) as e:
            raise BackendError(f"{type(e).__name__}: {e}") from None

    async def _discover(self) -> None:
        async with self._discovery:
            if not self._discovered and isinstance(self.client, RedisCluster):
                await self.client.initialize()
                self._discovered = True

    async def _evalsha(self, calls: Sequence[tuple[Script, list[str], list[Any]]]) -> list[Any]:
        """Run scripts in one round trip; those the server lost (``NOSCRIPT``) run once more.

        A missing script changed nothing, so running it again cannot double-charge.
        """
        results = await self._run(calls)
        missing = [i for i, r in enumerate(results) if _noscript(r)]
        if missing:
            await self.load_scripts()
            for i, r in zip(missing, await self._run([calls[i] for i in missing])):
                results[i] = r
        for r in results:
            if isinstance(r, Exception):
                raise r
        return results

    async def _run(self, calls: Sequence[tuple[Script, list[str], list[Any]]]) -> list[Any]:
        """Each call's reply, or its Redis error as a value."""
        if len(calls) == 1:
            s, keys, args = calls[0]
            try:
                return [await self.client.evalsha(s.sha, len(keys), *keys, *args)]
            except ResponseError as e:
                return [e]
        if self.cluster:
            return list(await asyncio.gather(
                *(self.client.evalsha(s.sha, len(keys), *keys, *args) for s, keys, args in calls),
                return_exceptions=True))
        pipe = self.client.pipeline(transaction=False)
        for s, keys, args in calls:
            pipe.evalsha(s.sha, len(keys), *keys, *args)
        return list(await pipe.execute(raise_on_error=False))

    async def check(self, charges: Sequence[Charge], lease: LeaseRequest | None = None) -> Verdict:
        keys = [c.key for c in charges]
        if lease is not None:
            keys.append(lease.key)
        calls: list[tuple[Script, list[str], list[Any]]] = []
        owners: list[list[int]] = []
        # One script over every key: atomic and exact. A cluster can only run a script over
        # one slot, so there each subject (hash tag) gets its own, all sent at once.
        groups = list(_group(keys).values()) if self.cluster else [list(range(len(keys)))]
        for idx in groups:
            ks: list[str] = []
            args: list[Any] = [0]
            rates = [i for i in idx if i < len(charges)]
            for i in rates:
                c = charges[i]
                ks.append(c.key)
                args += [repr(c.interval_us), c.burst, c.cost]
            args[0] = len(rates)
            if lease is not None and len(charges) in idx:
                ks.append(lease.key)
                args += [lease.limit, lease.member, lease.ttl_ms]
            calls.append((CHECK, ks, args))
            owners.append(idx)
        results = await self._bounded(lambda: self._evalsha(calls))
        for idx, (pos, retry_us) in zip(owners, results):
            if pos:
                i = idx[int(pos) - 1]
                name = charges[i].name if i < len(charges) else LEASE_LIMIT
                return Verdict(False, name, int(retry_us) / US)
        return ALLOWED

    async def refresh(self, leases: Sequence[tuple[str, str]], ttl_ms: int) -> None:
        by_key: dict[str, list[str]] = {}
        for key, member in leases:
            by_key.setdefault(key, []).append(member)
        if by_key:
            calls = [(REFRESH, [k], [ttl_ms, *members]) for k, members in by_key.items()]
            await self._bounded(lambda: self._evalsha(calls))

    async def release(self, key: str, member: str) -> None:
        await self._bounded(lambda: self.client.zrem(key, member))

    async def inspect(self, keys: Sequence[str]) -> dict[str, KeyState]:
        groups = list(_group(keys).values())
        if not groups:
            return {}
        calls: list[tuple[Script, list[str], list[Any]]] = [
            (INSPECT, [keys[i] for i in idx], []) for idx in groups]
        results = await self._bounded(lambda: self._evalsha(calls), ADMIN_TIMEOUT)
        out: dict[str, KeyState] = {}
        for idx, res in zip(groups, results):
            now = float(res[0])
            for n, i in enumerate(idx):
                kind, value = res[1 + 2 * n].decode(), res[2 + 2 * n]
                if kind == "rate":
                    out[keys[i]] = KeyState("rate", now, tat_us=float(value))
                elif kind == "lease":
                    out[keys[i]] = KeyState("lease", now, leases=int(value))
                else:
                    out[keys[i]] = KeyState("none", now)
        return out

    async def scan(self, prefix: str, limit: int) -> list[str]:
        async def go() -> list[str]:
            found: list[str] = []
            async for key in self.client.scan_iter(match=_glob_escape(prefix) + "*", count=500):
                found.append(key.decode() if isinstance(key, bytes) else key)
                if len(found) >= limit:
                    break
            return sorted(found)

        return await self._bounded(go, ADMIN_TIMEOUT)

    async def delete(self, keys: Sequence[str]) -> int:
        if not keys:
            return 0
        # One DEL per key: keys of different subjects may live on different cluster nodes.
        async def go() -> int:
            pipe = self.client.pipeline(transaction=False)
            for k in keys:
                pipe.delete(k)
            return sum(int(n) for n in await pipe.execute())

        return await self._bounded(go, ADMIN_TIMEOUT)

    async def ping(self) -> None:
        await self._bounded(self.client.ping)

    async def close(self) -> None:
        await self.client.aclose()


def _noscript(r: object) -> bool:
    return isinstance(r, NoScriptError) or (
        isinstance(r, ResponseError) and str(r).startswith("NOSCRIPT"))


def _glob_escape(s: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in s)
