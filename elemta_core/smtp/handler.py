"""Adapts aiosmtpd's ``handle_*`` callbacks to the hook pipeline, relay policy and the spool.

This is the only place SMTP meets plugins: every hook point of a session is called from
here, and every plugin result becomes exactly one SMTP reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import ipaddress
import itertools
import logging
import re
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiosmtpd.proxy_protocol import AF, get_proxy
from aiosmtpd.smtp import MISSING, Session
from aiosmtpd.smtp import Envelope as SMTPEnvelope

from elemta_core.config.model import BareNewline
from elemta_core.hooks.context import DeliveryInfo, HookContext, SecurityEvent
from elemta_core.hooks.pipeline import Pipeline
from elemta_core.hooks.types import (
    Action,
    HeaderChange,
    HeaderOp,
    HookPoint,
    HookResult,
    smtp_reply,
)
from elemta_core.message.message import Message
from elemta_core.queue.envelope import Envelope, Recipient, new_queue_id
from elemta_core.queue.spool import SpoolError
from elemta_core.smtp.auth import FailureThrottle, read_credentials

if TYPE_CHECKING:
    from elemta_core.delivery.direct import DirectLocal
    from elemta_core.metrics import Metrics
    from elemta_core.queue.quarantine import Quarantine
    from elemta_core.queue.runner import QueueRunner
    from elemta_core.queue.spool import Spool
    from elemta_core.smtp.protocol import ElemtaSMTP
    from elemta_core.smtp.users import UsersFile

log = logging.getLogger("elemta.smtp")


@dataclass
class EdgePolicy:
    """What the handler needs to know of the config, precomputed."""

    hostname: str
    local_domains: frozenset[str]
    relay_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    max_recipients: int
    max_connections: int
    max_message_size: int
    users: UsersFile | None = None
    software: str = "Elemta"
    max_connections_per_ip: int = 0
    max_bad_recipients: int = 20
    auth_max_failures: int = 5
    auth_failure_window: float = 300.0
    greet_pause: float = 0.0
    bare_newline: BareNewline = BareNewline.NORMALIZE
    proxy_trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    proxy_timeout: float = 5.0

    _relay_seen: dict[str, bool] = field(default_factory=dict, repr=False, compare=False)

    def relay_ok(self, ip: str) -> bool:
        """Per address, remembered (parsing it was 2% of a connection's CPU)."""
        ok = self._relay_seen.get(ip)
        if ok is None:
            if len(self._relay_seen) >= 4096:
                self._relay_seen.clear()
            ok = self._relay_seen[ip] = in_networks(ip, self.relay_networks)
        return ok


def in_networks(ip: str, nets: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    return any(addr in net for net in nets)


_date_cache: tuple[int, str] = (0, "")


def _rfc5322_now() -> str:
    """The date for trace headers, formatted once per second rather than per message."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, email.utils.formatdate(now, localtime=True))
    return _date_cache[1]


_BARE_NEWLINE = re.compile(rb"\r(?!\n)|(?<!\r)\n")


@dataclass
class SessionStats:
    active: int = 0
    total: int = 0
    refused: int = 0
    sessions: set[ElemtaSMTP] = field(default_factory=set)


class SMTPHandler:
    def __init__(
        self,
        policy: EdgePolicy,
        pipeline: Callable[[], Pipeline],
        spool: Spool,
        runner: QueueRunner,
        quarantine: Quarantine,
        metrics: Metrics,
        direct: DirectLocal | None = None,
    ) -> None:
        self.policy = policy
        self.direct = direct
        self.pipeline = pipeline
        self.spool = spool
        self.runner = runner
        self.quarantine = quarantine
        self.metrics = metrics
        self.stats = SessionStats()
        self.accepting = True
        self._background: set[asyncio.Task[Any]] = set()
        self._auth_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="auth")
        self._per_ip: dict[str, int] = {}
        self._throttle = FailureThrottle(policy.auth_max_failures, policy.auth_failure_window)
        self._session_prefix = secrets.token_hex(3)
        self._session_seq = itertools.count(1)
        # the per-connection/message series, looked up once
        self._m_refused = metrics.connections.labels("refused")
        self._m_conn_accepted = metrics.connections.labels("accepted")
        self._m_accepted = metrics.messages.labels("accepted")

    # -- background observers ------------------------------------------------------------

    def observe(self, hook: HookPoint, ctx: HookContext) -> None:
        """Run an observer hook without holding up the session."""
        pipe = self.pipeline()
        if not pipe.has(hook):
            return
        t = asyncio.get_running_loop().create_task(pipe.run(hook, ctx))
        self._background.add(t)
        t.add_done_callback(self._background.discard)

    def emit(self, hook: HookPoint, ctx: HookContext, event: SecurityEvent) -> None:
        """Security events from the core or plugins (rate_limited, auth_failed …)."""
        self.metrics.security_events.labels(event.kind).inc()
        pipe = self.pipeline()
        if not pipe.has(hook):
            return
        ev_ctx = HookContext(session_id=ctx.session_id, peer_ip=ctx.peer_ip,
                             peer_port=ctx.peer_port, helo=ctx.helo, tls=ctx.tls,
                             auth_user=ctx.auth_user, transaction_id=ctx.transaction_id,
                             mail_from=ctx.mail_from, recipients=list(ctx.recipients),
                             tags=dict(ctx.tags), event=event)
        self.observe(hook, ev_ctx)

    # -- connection ----------------------------------------------------------------------

    def admit(self, proto: ElemtaSMTP) -> bool:
        if not self.accepting or self.stats.active >= self.policy.max_connections:
            self.stats.refused += 1
            self._m_refused.inc()
            return False
        self.stats.active += 1
        self.stats.total += 1
        self.stats.sessions.add(proto)
        self._m_conn_accepted.inc()
        self.metrics.active_connections.inc()
        return True

    def released(self, proto: ElemtaSMTP) -> None:
        self.stats.active -= 1
        self.stats.sessions.discard(proto)
        self.metrics.active_connections.dec()
        ctx: HookContext | None = getattr(proto, "ctx", None)
        if ctx is not None:
            if getattr(proto, "counted_ip", False):
                left = self._per_ip.get(ctx.peer_ip, 1) - 1
                if left > 0:
                    self._per_ip[ctx.peer_ip] = left
                else:
                    self._per_ip.pop(ctx.peer_ip, None)
            self.observe(HookPoint.DISCONNECT, ctx)

    async def on_connect(self, proto: ElemtaSMTP) -> str | None:
        assert proto.session is not None and proto.transport is not None
        peer = proto.session.peer or ("", 0)
        sock = proto.transport.get_extra_info("sockname") or ("", 0)
        ctx = HookContext(
            session_id=f"{self._session_prefix}{next(self._session_seq):x}", peer_ip=str(peer[0]), peer_port=int(peer[1]),
            local_ip=str(sock[0]), local_port=int(sock[1]),
        )
        ctx.relay_allowed = self.policy.relay_ok(ctx.peer_ip)
        proto.ctx = ctx  # type: ignore[attr-defined]
        log.info("session=%s connect from [%s]:%d", ctx.session_id, ctx.peer_ip, ctx.peer_port)
        cap = self.policy.max_connections_per_ip
        n = self._per_ip.get(ctx.peer_ip, 0)
        if cap and n >= cap:
            self.emit(HookPoint.POLICY_VIOLATION, ctx, SecurityEvent(
                "policy_violation", f"more than {cap} connections from {ctx.peer_ip}"))
            return "421 4.7.0 Too many connections from your address, try again later"
        self._per_ip[ctx.peer_ip] = n + 1
        proto.counted_ip = True  # type: ignore[attr-defined]
        r = await self.pipeline().run(HookPoint.CONNECT, ctx)
        if r.action in (Action.REJECT, Action.TEMPFAIL):
            code = r.code or (554 if r.action is Action.REJECT else 421)
            return smtp_reply(HookResult(r.action, code, r.enhanced, r.text or "Service unavailable"))
        return None

    async def on_proxy(self, proto: ElemtaSMTP) -> bool:
        """Read a HAProxy PROXY v1/v2 header; the client address in it becomes the peer."""
        assert proto.session is not None
        peer = proto.session.peer or ("", 0)
        if not in_networks(str(peer[0]), self.policy.proxy_trusted):
            log.warning("PROXY listener: [%s] is not in proxy_trusted, closing", peer[0])
            return False
        try:
            data = await asyncio.wait_for(get_proxy(proto._reader), self.policy.proxy_timeout)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            data = None
        if not data or not data.valid:
            log.warning("PROXY listener: no valid PROXY header from [%s]: %s", peer[0],
                        getattr(data, "error", "timeout"))
            return False
        proto.session.proxy_data = data
        if data.family in (AF.INET, AF.INET6) and data.src_addr is not None:
            proto.session.peer = (str(data.src_addr), int(data.src_port or 0))  # type: ignore[assignment]
        return True

    def early_talker(self, proto: ElemtaSMTP) -> None:
        self.protocol_violation(proto, "client talked before the greeting")

    def protocol_violation(self, proto: ElemtaSMTP, what: str) -> None:
        ctx: HookContext | None = getattr(proto, "ctx", None)
        if ctx is not None:
            log.warning("session=%s [%s] protocol violation: %s", ctx.session_id, ctx.peer_ip, what)
            self.emit(HookPoint.POLICY_VIOLATION, ctx, SecurityEvent("policy_violation", what))

    @staticmethod
    def ctx(proto: ElemtaSMTP) -> HookContext:
        return proto.ctx  # type: ignore[attr-defined,no-any-return]

    # -- HELO / EHLO -------------------------------------------------------------------------

    async def _helo(self, proto: ElemtaSMTP, hostname: str, esmtp: bool) -> HookResult:
        ctx = self.ctx(proto)
        ctx.helo, ctx.esmtp = hostname, esmtp
        ctx.end_transaction()
        return await self.pipeline().run(HookPoint.HELO, ctx)

    async def handle_HELO(self, server: ElemtaSMTP, session: Session, envelope: SMTPEnvelope,
                          hostname: str) -> str:
        r = await self._helo(server, hostname, False)
        if r.action in (Action.REJECT, Action.TEMPFAIL):
            return smtp_reply(r)
        session.host_name = hostname
        return f"250 {self.policy.hostname}"

    async def handle_EHLO(self, server: ElemtaSMTP, session: Session, envelope: SMTPEnvelope,
                          hostname: str, responses: list[str]) -> list[str]:
        r = await self._helo(server, hostname, True)
        if r.action in (Action.REJECT, Action.TEMPFAIL):
            session.extended_smtp = False
            return [smtp_reply(r)]
        session.host_name = hostname
        out = [ln for ln in responses[:-1]
               if not (ln.startswith("250-AUTH") and self.policy.users is None)]
        out += ["250-PIPELINING", "250-ENHANCEDSTATUSCODES", "250 HELP"]
        return out

    # -- STARTTLS / AUTH -------------------------------------------------------------------

    def handle_STARTTLS(self, server: ElemtaSMTP, session: Session, envelope: SMTPEnvelope) -> bool:
        ctx = self.ctx(server)
        obj = session.ssl.get("ssl_object") if session.ssl else None
        ctx.tls = True
        if obj is not None:
            ctx.tls_version = obj.version()
            cipher = obj.cipher()
            ctx.tls_cipher = cipher[0] if cipher else None
        # RFC 3207: forget everything learned before TLS.
        ctx.helo = None
        ctx.end_transaction()
        self.observe(HookPoint.STARTTLS, ctx)
        return True

    async def handle_AUTH(self, server: ElemtaSMTP, session: Session, envelope: SMTPEnvelope,
                          args: list[str]) -> str | None:
        ctx = self.ctx(server)
        users = self.policy.users
        if users is None:
            return "502 5.5.1 AUTH not available"
        throttle = self._auth_throttle()
        if n := throttle.blocked(ctx.peer_ip):
            self.emit(HookPoint.AUTH_FAILED, ctx, SecurityEvent(
                "auth_failed", f"throttled after {n} failures", data={"user": ""}))
            asyncio.get_running_loop().call_soon(server.transport.close)  # type: ignore[union-attr]
            return "421 4.7.0 Too many authentication failures, try again later"
        mech = args[0].upper()
        creds = await read_credentials(server, mech, args[1] if len(args) > 1 else None)
        if creds is None:
            return None  # a syntax reply was already sent
        user, password = creds
        loop = asyncio.get_running_loop()
        try:
            ok = await loop.run_in_executor(self._auth_pool, users.check, user, password)
        except (OSError, ValueError) as e:
            log.error("users file unusable: %s", e)
            return "454 4.7.0 Temporary authentication failure"
        if not ok:
            log.warning("session=%s AUTH %s failed for %r from [%s]", ctx.session_id, mech, user,
                        ctx.peer_ip)
            failures = throttle.failed(ctx.peer_ip)
            self.emit(HookPoint.AUTH_FAILED, ctx,
                      SecurityEvent("auth_failed", f"{mech} {user}", data={"user": user}))
            # Each failure from the same address answers a little later: guessing gets slow.
            await asyncio.sleep(min(0.1 * failures, 1.0))
            return "535 5.7.8 Authentication credentials invalid"
        ctx.auth_user, ctx.auth_mechanism = user, mech
        r = await self.pipeline().run(HookPoint.AUTH, ctx)
        if r.action in (Action.REJECT, Action.TEMPFAIL):
            ctx.auth_user = ctx.auth_mechanism = None
            return smtp_reply(r)
        session.authenticated = True
        session.auth_data = user  # type: ignore[assignment]
        ctx.relay_allowed = True
        log.info("session=%s authenticated as %r (%s)", ctx.session_id, user, mech)
        return "235 2.7.0 Authentication successful"

    def _auth_throttle(self) -> FailureThrottle:
        """The throttle for the current policy (a reload may change its limits)."""
        t = self._throttle
        t.max_failures, t.window = self.policy.auth_max_failures, self.policy.auth_failure_window
        return t

    # -- transaction -----------------------------------------------------------------------

    async def handle_MAIL(self, server: ElemtaSMTP, session: Session, envelope: SMTPEnvelope,
                          address: str, mail_options: list[str]) -> str:
        ctx = self.ctx(server)
        ctx.begin_transaction(new_queue_id())
        ctx.mail_from, ctx.mail_options = address, list(mail_options)
        r = await self.pipeline().run(HookPoint.MAIL_FROM, ctx)
        if r.action in (Action.REJECT, Action.TEMPFAIL):
            ctx.end_transaction()
            return smtp_reply(r)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Sender OK"

    async def handle_RCPT(self, server: ElemtaSMTP, session: Session, envelope: SMTPEnvelope,
                          address: str, rcpt_options: list[str]) -> str:
        ctx = self.ctx(server)
        if len(envelope.rcpt_tos) >= self.policy.max_recipients:
            return "452 4.5.3 Too many recipients"
        local, at, domain = address.rpartition("@")
        if not at or not local or not domain:
            return f"501 5.1.3 <{address}>: recipient address must be user@domain"
        if domain.lower().rstrip(".") not in self.policy.local_domains and not ctx.relay_allowed:
            self.emit(HookPoint.POLICY_VIOLATION, ctx,
                      SecurityEvent("policy_violation", f"relay denied for <{address}>"))
            return self._bad_recipient(server, ctx, f"554 5.7.1 <{address}>: Relay access denied")
        ctx.recipient, ctx.rcpt_options = address, list(rcpt_options)
        r = await self.pipeline().run(HookPoint.RCPT_TO, ctx)
        ctx.recipient = None
        if r.action in (Action.REJECT, Action.TEMPFAIL):
            return self._bad_recipient(server, ctx, smtp_reply(r))
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        ctx.recipients.append(address)
        return "250 2.1.5 Recipient OK"

    def _bad_recipient(self, server: ElemtaSMTP, ctx: HookContext, reply: str) -> str:
        """Count refused recipients; a session that keeps guessing is cut off (RCPT floods)."""
        server.bad_recipients += 1
        limit = self.policy.max_bad_recipients
        if limit and server.bad_recipients > limit:
            self.emit(HookPoint.POLICY_VIOLATION, ctx, SecurityEvent(
                "policy_violation", f"more than {limit} refused recipients"))
            asyncio.get_running_loop().call_soon(server.transport.close)  # type: ignore[union-attr]
            return "421 4.7.0 Too many refused recipients, closing connection"
        return reply

    async def handle_RSET(self, server: ElemtaSMTP, session: Session,
                          envelope: SMTPEnvelope) -> Any:
        self.ctx(server).end_transaction()
        return MISSING

    async def on_data_start(self, proto: ElemtaSMTP) -> str | None:
        r = await self.pipeline().run(HookPoint.DATA_START, self.ctx(proto))
        if r.action in (Action.REJECT, Action.TEMPFAIL):
            return smtp_reply(r)
        return None

    async def on_unknown(self, proto: ElemtaSMTP, command: str, arg: str | None) -> str:
        ctx = self.ctx(proto)
        ctx.command = f"{command} {arg}" if arg else command
        r = await self.pipeline().run(HookPoint.UNKNOWN_COMMAND, ctx)
        ctx.command = None
        if r.action is Action.CONTINUE:
            return f'500 5.5.2 Error: command "{command[:32]}" not recognized'
        return smtp_reply(r)  # ACCEPT: a plugin implemented the command

    # -- the message -----------------------------------------------------------------------

    def _received(self, ctx: HookContext, queue_id: str, rcpts: list[str]) -> HeaderChange:
        proto = "ESMTP" if ctx.esmtp else "SMTP"
        if ctx.tls:
            proto += "S"
        if ctx.auth_user:
            proto += "A"
        tls = f" (using {ctx.tls_version} with cipher {ctx.tls_cipher})" if ctx.tls else ""
        helo = "".join(c for c in (ctx.helo or "unknown") if 32 < ord(c) < 127)[:255]
        for_ = f" for <{rcpts[0]}>" if len(rcpts) == 1 else ""
        value = (f"from {helo} ([{ctx.peer_ip}]){tls} by {self.policy.hostname} "
                 f"({self.policy.software}) with {proto} id {queue_id}{for_}; "
                 f"{_rfc5322_now()}")
        return HeaderChange(HeaderOp.ADD, "Received", value)

    async def handle_DATA(self, server: ElemtaSMTP, session: Session,
                          envelope: SMTPEnvelope) -> str:
        ctx = self.ctx(server)
        raw = envelope.original_content or b""
        qid = ctx.transaction_id or new_queue_id()
        crlf = raw.count(b"\r\n")  # C-speed pre-check; the regex only runs on odd input
        if (raw.count(b"\n") != crlf or raw.count(b"\r") != crlf) and _BARE_NEWLINE.search(raw):
            if self.policy.bare_newline is BareNewline.REJECT:
                ctx.end_transaction()
                self.emit(HookPoint.POLICY_VIOLATION, ctx,
                          SecurityEvent("policy_violation", "bare CR or LF in message"))
                return "554 5.6.0 Message contains a bare CR or LF; lines must end with CRLF"
            raw = _BARE_NEWLINE.sub(b"\r\n", raw)
        msg = Message(raw)
        ctx.message = msg
        try:
            r = await self.pipeline().run(HookPoint.MESSAGE, ctx)
            rcpts = list(envelope.rcpt_tos)
            if r.action in (Action.REJECT, Action.TEMPFAIL):
                self.metrics.messages.labels(r.action.name.lower()).inc()
                log.info("%s rejected from=<%s> action=%s %s", qid, envelope.mail_from,
                         r.action.name, r.reason or r.text or "")
                return smtp_reply(r)
            if r.action is Action.DISCARD:
                self.metrics.messages.labels("discarded").inc()
                log.info("%s discarded from=<%s> %s", qid, envelope.mail_from, r.reason or "")
                return f"250 2.0.0 Ok: queued as {qid}"
            data = msg.with_changes([*ctx.header_changes, self._received(ctx, qid, rcpts)]).raw
            env = Envelope(qid, envelope.mail_from or "", [Recipient(a) for a in rcpts],
                           peer_ip=ctx.peer_ip, helo=ctx.helo or "", auth_user=ctx.auth_user,
                           tags=dict(ctx.tags))
            if r.action is Action.QUARANTINE:
                plugin = r.tags.get("quarantine.plugin", "") if r.tags else ""
                try:
                    await asyncio.get_running_loop().run_in_executor(
                        None, self.quarantine.store, env, data, r.reason or "quarantined", plugin)
                except OSError as e:
                    log.error("%s quarantine write failed: %s", qid, e)
                    return "451 4.3.0 Temporary local problem, please try again later"
                self.metrics.messages.labels("quarantined").inc()
                log.info("%s quarantined from=<%s> reason=%s", qid, env.mail_from, r.reason)
                return f"250 2.0.0 Ok: queued as {qid}"
            direct = self.direct
            if direct is not None and direct.eligible(rcpts) and await direct.deliver(env, data):
                self._accepted(ctx, env, len(data), "delivered")
                return f"250 2.0.0 Ok: queued as {qid}"
            # queued: not for direct delivery, or some copies failed (the queue retries those)
            try:
                await self.spool.store(env, data)
            except SpoolError as e:
                self.metrics.messages.labels("spool_error").inc()
                log.error("%s not queued: %s", qid, e)
                if e.no_space:
                    return "452 4.3.1 Insufficient system storage"
                return "451 4.3.0 Temporary local problem, please try again later"
            self.runner.submit(qid)
            self._accepted(ctx, env, len(data), "queued")
            return f"250 2.0.0 Ok: queued as {qid}"
        finally:
            ctx.end_transaction()

    def _accepted(self, ctx: HookContext, env: Envelope, size: int, how: str) -> None:
        """Count and log a message that is durably stored, then tell the observers."""
        self._m_accepted.inc()
        self.metrics.message_bytes.inc(size)
        log.info("%s %s from=<%s> nrcpt=%d size=%d", env.queue_id, how, env.mail_from,
                 len(env.recipients), size)
        info = DeliveryInfo(env.queue_id, status=how)
        rcpts = [r.address for r in env.recipients]
        for hook in (HookPoint.QUEUED, HookPoint.AFTER_QUEUE):
            if self.pipeline().has(hook):
                c = HookContext(session_id=ctx.session_id, peer_ip=ctx.peer_ip, helo=ctx.helo,
                                tls=ctx.tls, auth_user=ctx.auth_user,
                                transaction_id=env.queue_id, mail_from=env.mail_from,
                                recipients=rcpts, tags=dict(ctx.tags), delivery=info)
                self.observe(hook, c)

    async def handle_exception(self, error: Exception) -> str:
        log.error("SMTP session error: %s: %s", type(error).__name__, error, exc_info=error)
        return "451 4.3.0 Temporary local problem, please try again later"

    async def drain(self, grace: float) -> None:
        """Stop admitting, give sessions ``grace`` seconds, then close what is left."""
        self.accepting = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self.stats.sessions and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for proto in list(self.stats.sessions):
            if proto.transport is not None:
                with contextlib.suppress(ConnectionError, OSError, RuntimeError):
                    await proto.push("421 4.3.2 Service shutting down")
                if proto.transport is not None:
                    proto.transport.close()
        if self._background:
            await asyncio.wait(list(self._background), timeout=2)
        self._auth_pool.shutdown(wait=False)
