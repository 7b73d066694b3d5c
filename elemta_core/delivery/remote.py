"""Delivery to other servers: pick the hosts for a route, connect, send, classify each reply.

For an MX route the hosts come from :func:`~elemta_core.delivery.mx.lookup_mx`, best
preference first; a host that cannot be reached (refused, timeout, bad greeting, dropped
connection) makes us try the next one, and only when none works are the recipients
deferred. A reply from a server that answered decides: 2xx delivered, 4xx deferred,
5xx failed. Each destination has a concurrency limit, which also bounds its connections.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass

from elemta_core.delivery.lmtp import LmtpSession
from elemta_core.delivery.mx import DnsLookup, MXOutcome, lookup_mx
from elemta_core.delivery.pool import ConnectionPool
from elemta_core.delivery.result import AttemptResult
from elemta_core.delivery.smtp import ClientSettings, Reply, SessionError, SmtpSession
from elemta_core.delivery.transports import Kind, Route

log = logging.getLogger("elemta.delivery")


@dataclass(frozen=True, slots=True)
class Target:
    """One address to connect to, and the name it was found under (for logs and TLS SNI)."""

    kind: Kind
    host: str
    port: int
    name: str = ""
    unix_path: str = ""
    auth: tuple[str, str] | None = None

    @property
    def key(self) -> str:
        if self.unix_path:
            return f"{self.kind.value}:unix:{self.unix_path}"
        return f"{self.kind.value}:[{self.host}]:{self.port}:{self.auth[0] if self.auth else ''}"

    def session(self, settings: ClientSettings) -> SmtpSession:
        cls = LmtpSession if self.kind is Kind.LMTP else SmtpSession
        return cls(settings, self.host, self.port, unix_path=self.unix_path, auth=self.auth)


def _all(recipients: list[str], ok: bool, permanent: bool, code: int, text: str,
         dest: str) -> list[AttemptResult]:
    return [AttemptResult(a, ok, permanent, code, text, dest) for a in recipients]


class RemoteDelivery:
    def __init__(self, settings: ClientSettings, dns: DnsLookup | None, pool: ConnectionPool,
                 destination_concurrency: int = 10) -> None:
        self.settings = settings
        self.dns = dns
        self.pool = pool
        self.limit = destination_concurrency
        self._slots: defaultdict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(self.limit))

    async def targets(self, route: Route) -> tuple[list[Target], AttemptResult | None]:
        """The addresses to try for ``route``, or a result that applies to every recipient."""
        if route.unix_path:
            return [Target(route.kind, "", 0, unix_path=route.unix_path)], None
        if not route.mx:
            return [Target(route.kind, route.host, route.port, route.host, auth=route.auth)], None
        if self.dns is None:
            return [], AttemptResult("", False, False, 451, "4.4.3 no DNS resolver is configured")
        mx = await lookup_mx(self.dns, route.host)
        if mx.outcome is MXOutcome.NULL_MX:
            return [], AttemptResult("", False, True, 556, f"5.1.10 {mx.detail}")
        if mx.outcome is MXOutcome.NOT_FOUND:
            return [], AttemptResult("", False, True, 550, f"5.4.4 {mx.detail}")
        if mx.outcome is MXOutcome.TEMPFAIL:
            return [], AttemptResult("", False, False, 451, f"4.4.3 {mx.detail}")
        return [Target(route.kind, addr, route.port, h.name, auth=route.auth)
                for h in mx.hosts for addr in h.addresses], None

    async def deliver(self, route: Route, mail_from: str, recipients: list[str],
                      data: bytes) -> list[AttemptResult]:
        async with self._slots[route.key]:
            targets, verdict = await self.targets(route)
            if verdict is not None:
                return _all(recipients, verdict.ok, verdict.permanent, verdict.code or 451,
                            verdict.text, route.key)
            last = "no host to deliver to"
            for t in targets:
                try:
                    replies, where = await self._send(t, mail_from, recipients, data)
                except SessionError as e:
                    last = str(e)
                    log.info("%s unusable, trying the next host: %s", t.name or t.key, e)
                    continue
                return [self._result(a, replies[a], where) for a in recipients]
            return _all(recipients, False, False, 451, f"4.4.1 {last}", route.key)

    async def _send(self, t: Target, mail_from: str, recipients: list[str],
                    data: bytes) -> tuple[dict[str, Reply], str]:
        session = self.pool.take(t.key)
        if session is not None:
            try:
                replies = await session.send(mail_from, recipients, data)
                self.pool.give(t.key, session)
                return replies, session.peer
            except SessionError as e:  # a cached connection the server had closed
                log.info("cached connection to %s failed (%s); opening a fresh one", t.key, e)
        session = t.session(self.settings)
        await session.open()
        self.pool.opened += 1
        replies = await session.send(mail_from, recipients, data)
        self.pool.give(t.key, session)
        return replies, session.peer

    async def close(self) -> None:
        await self.pool.close()

    @staticmethod
    def _result(address: str, r: Reply, where: str) -> AttemptResult:
        text = f"{r.text} (from {where})".replace("\n", " ")
        return AttemptResult(address, r.ok, r.permanent, r.code, text, where)
