"""What a counter store must do, and the values that cross that boundary.

Two stores implement it: :class:`~builtin_plugins.ratelimit.memory.MemoryBackend` (this process
only) and :class:`~builtin_plugins.ratelimit.redis_backend.RedisBackend` (every node sharing one
Redis or Valkey). The plugin never knows which one it talks to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from builtin_plugins.ratelimit.gcra import Charge


class BackendError(Exception):
    """The store could not answer (down, slow, refused); ``on_backend_error`` decides."""


@dataclass(frozen=True, slots=True)
class LeaseRequest:
    """A slot among ``limit`` concurrent ones, held by ``member`` until released or expired."""

    key: str
    member: str
    limit: int
    ttl_ms: int


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    denied: str | None = None  # the refusing limit's name; "connections" for the lease
    retry_after: float = 0.0  # seconds


ALLOWED = Verdict(True)

LEASE_LIMIT = "connections"


@dataclass(frozen=True, slots=True)
class KeyState:
    """A key as ``show`` reports it: a rate key's TAT, or a lease key's live slots."""

    kind: str  # "rate" | "lease" | "none"
    now_us: float
    tat_us: float | None = None
    leases: int = 0


class Backend(Protocol):
    name: str

    async def check(self, charges: Sequence[Charge], lease: LeaseRequest | None = None) -> Verdict:
        """Charge every limit and take the lease, all or nothing (atomic per hash tag)."""
        ...

    async def refresh(self, leases: Sequence[tuple[str, str]], ttl_ms: int) -> None:
        """Push back the expiry of live leases ``(key, member)``; never resurrects one."""
        ...

    async def release(self, key: str, member: str) -> None: ...

    async def inspect(self, keys: Sequence[str]) -> dict[str, KeyState]: ...

    async def scan(self, prefix: str, limit: int) -> list[str]:
        """Up to ``limit`` live keys starting with ``prefix``."""
        ...

    async def delete(self, keys: Sequence[str]) -> int: ...

    async def close(self) -> None: ...
