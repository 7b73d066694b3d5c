"""SMTP AUTH (RFC 4954) mechanics: reading PLAIN/LOGIN credentials and throttling guessers.

The handler decides what a successful login means (the ``auth`` hook, relaying); this module
only gets credentials off the wire and keeps per-address failure counts.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from elemta_core.smtp.protocol import ElemtaSMTP

#: Addresses remembered at most; past that the table starts over (bounded memory under a
#: distributed attack, at the price of forgetting old failures).
MAX_TRACKED = 100_000


def _b64(s: str) -> bytes | None:
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        return None


async def read_credentials(server: ElemtaSMTP, mech: str,
                           initial: str | None) -> tuple[str, bytes] | None:
    """(user, password) from the client, or None after a syntax reply was already sent."""
    if mech == "PLAIN":
        if initial is None:
            got = await server.challenge_auth("")
            if not isinstance(got, bytes):
                return None
            blob: bytes | None = got
        else:
            blob = b"" if initial == "=" else _b64(initial)
        if blob is None:
            await server.push("501 5.5.2 Cannot decode base64")
            return None
        parts = blob.split(b"\x00")
        if len(parts) != 3:
            await server.push("501 5.5.2 Cannot split PLAIN credentials")
            return None
        return parts[1].decode("utf-8", "replace"), parts[2]
    if mech == "LOGIN":
        if initial is not None:
            login = _b64(initial)
            if login is None:
                await server.push("501 5.5.2 Cannot decode base64")
                return None
        else:
            got = await server.challenge_auth(server.AuthLoginUsernameChallenge)
            if not isinstance(got, bytes):
                return None
            login = got
        pw = await server.challenge_auth(server.AuthLoginPasswordChallenge)
        if not isinstance(pw, bytes):
            return None
        return login.decode("utf-8", "replace"), pw
    await server.push("504 5.5.4 Unrecognized authentication type")
    return None


class FailureThrottle:
    """Recent AUTH failures per client address, within a sliding window."""

    def __init__(self, max_failures: int, window: float) -> None:
        self.max_failures = max_failures
        self.window = window
        self._failures: dict[str, deque[float]] = {}

    def recent(self, ip: str) -> deque[float]:
        q = self._failures.get(ip)
        if q is None:
            if len(self._failures) > MAX_TRACKED:
                self._failures.clear()
            q = self._failures[ip] = deque(maxlen=max(self.max_failures, 1) * 2)
        cutoff = time.monotonic() - self.window
        while q and q[0] < cutoff:
            q.popleft()
        return q

    def blocked(self, ip: str) -> int:
        """How many recent failures, when the address is over the limit; else 0."""
        n = len(self.recent(ip))
        return n if self.max_failures and n >= self.max_failures else 0

    def failed(self, ip: str) -> int:
        """Record a failure; returns the recent count (for a growing answer delay)."""
        q = self.recent(ip)
        q.append(time.monotonic())
        return len(q)
