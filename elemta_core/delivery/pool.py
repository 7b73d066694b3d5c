"""A cache of idle outbound connections, so several messages share one SMTP/LMTP session.

A session goes back to the cache after a transaction when it is still connected and has
carried fewer than ``reuse`` messages; an idle one is closed after ``idle`` seconds (the
remote server would drop it soon anyway), and at most ``per_key`` wait per destination.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

from elemta_core.delivery.smtp import SmtpSession


class ConnectionPool:
    def __init__(self, reuse: int = 100, idle: float = 5.0, per_key: int = 10) -> None:
        self.reuse = reuse
        self.idle = idle
        self.per_key = per_key
        self._idle: defaultdict[str, list[tuple[float, SmtpSession]]] = defaultdict(list)
        self._reaper: asyncio.Task[None] | None = None
        self.opened = 0
        self.reused = 0

    def take(self, key: str) -> SmtpSession | None:
        """An idle, still connected session to ``key``, or None."""
        stack = self._idle.get(key)
        now = time.monotonic()
        while stack:
            at, session = stack.pop()
            if session.usable and now - at < self.idle:
                self.reused += 1
                return session
            session.close()
        return None

    def give(self, key: str, session: SmtpSession) -> None:
        """Return ``session`` after a transaction; it is cached or closed."""
        stack = self._idle[key]
        if not session.usable or session.messages >= self.reuse or len(stack) >= self.per_key:
            asyncio.get_running_loop().create_task(session.quit())
            return
        stack.append((time.monotonic(), session))
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.get_running_loop().create_task(self._reap())

    async def _reap(self) -> None:
        while any(self._idle.values()):
            await asyncio.sleep(self.idle / 2)
            now = time.monotonic()
            expired: list[SmtpSession] = []
            # Sort out every stack before the first await: a session taken or given back
            # meanwhile must never be closed under its user or put back in the cache twice.
            for stack in self._idle.values():
                keep = [(at, s) for at, s in stack if now - at < self.idle and s.usable]
                expired.extend(s for at, s in stack if now - at >= self.idle or not s.usable)
                stack[:] = keep
            for s in expired:
                await s.quit()

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            try:
                await self._reaper
            except asyncio.CancelledError:
                pass
        sessions = [s for stack in self._idle.values() for _, s in stack]
        self._idle.clear()
        await asyncio.gather(*(s.quit() for s in sessions), return_exceptions=True)
