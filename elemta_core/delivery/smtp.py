"""Outbound SMTP sessions over aiosmtplib: opportunistic STARTTLS, AUTH, PIPELINING, reuse.

One :class:`SmtpSession` is one connection to one server; it can carry several messages
(the connection pool hands it back after each). :meth:`SmtpSession.send` returns one reply
per recipient, so the scheduler can deliver, defer or fail each recipient on its own.

aiosmtplib sends one command at a time and drops bytes that arrive while a reply is still
unread, so PIPELINING (RFC 2920) uses :class:`PipeliningProtocol`, a subclass that keeps
every byte and hands out replies in order.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import aiosmtplib
from aiosmtplib.errors import SMTPException
from aiosmtplib.protocol import PERIOD_REGEX, SMTPProtocol, normalize_message_line_endings
from aiosmtplib.response import SMTPResponse

if TYPE_CHECKING:
    from elemta_core.config.loader import Config

log = logging.getLogger("elemta.delivery.smtp")

_MAX_BUFFER = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ClientSettings:
    helo_name: str
    connect_timeout: float = 30.0
    command_timeout: float = 300.0
    tls: Literal["opportunistic", "require", "none"] = "opportunistic"
    tls_verify: bool = False

    @classmethod
    def from_config(cls, cfg: Config) -> ClientSettings:
        d = cfg.delivery
        return cls(helo_name=d.helo_name or cfg.server.hostname,
                   connect_timeout=d.connect_timeout, command_timeout=d.command_timeout,
                   tls=d.tls, tls_verify=d.tls_verify)


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    text: str

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300

    @property
    def permanent(self) -> bool:
        return 500 <= self.code < 600

    def __str__(self) -> str:
        return f"{self.code} {self.text}".replace("\n", " ")


class SessionError(Exception):
    """The connection could not be used (refused, timed out, dropped, bad greeting).

    The caller tries the next host, or defers: a broken connection never fails a recipient.
    """

    def __init__(self, text: str, reply: Reply | None = None) -> None:
        super().__init__(text)
        self.reply = reply


class PipeliningProtocol(SMTPProtocol):
    """aiosmtplib's protocol, keeping replies that arrive before they are asked for."""

    def data_received(self, data: bytes) -> None:
        if self._response_waiter is None:
            return
        self._buffer.extend(data)
        if len(self._buffer) > _MAX_BUFFER:
            del self._buffer[:]
            self._set_response_exception(self._response_waiter,
                                         aiosmtplib.SMTPResponseException(500, "Response too long"))
            return
        self._hand_out()

    def _hand_out(self) -> None:
        waiter = self._response_waiter
        if waiter is None or waiter.done() or not self._buffer:
            return
        try:
            response = self._read_response_from_buffer()
        except Exception as exc:  # noqa: BLE001 - a malformed reply fails the waiting command
            self._set_response_exception(waiter, exc)
            return
        if response is not None:
            waiter.set_result(response)

    async def read_response(self, timeout: float | None = None) -> SMTPResponse:
        self._hand_out()
        return await super().read_response(timeout)

    async def pipeline(self, lines: list[bytes], timeout: float | None) -> list[SMTPResponse]:
        """Write every command at once, then read one reply per command, in order."""
        if self._command_lock is None:
            raise aiosmtplib.SMTPServerDisconnected("Server not connected")
        async with self._command_lock:
            self._response_pending = True
            self.write(b"".join(lines))
            return [await self.read_response(timeout) for _ in lines]

    async def send_data(self, message: bytes, replies: int,
                        timeout: float | None) -> list[SMTPResponse]:
        """DATA, then the dot-stuffed message; SMTP answers once, LMTP once per recipient."""
        if self._command_lock is None:
            raise aiosmtplib.SMTPServerDisconnected("Server not connected")
        message = normalize_message_line_endings(message)
        if not message.endswith(b"\r\n"):
            message += b"\r\n"
        message = PERIOD_REGEX.sub(b"..", message) + b".\r\n"
        async with self._command_lock:
            self._response_pending = True
            self.write(b"DATA\r\n")
            start = await self.read_response(timeout)
            if start.code != 354:
                return [start] * replies
            self._response_pending = True
            self.write(message)
            return [await self.read_response(timeout) for _ in range(replies)]


def _line(verb: str, arg: str, options: list[str], encoding: str) -> bytes:
    text = " ".join([f"{verb}{arg}", *options])
    if any(c in text for c in "\r\n\0"):
        raise ValueError(f"refusing to send a command with a control character: {text!r}")
    return text.encode(encoding) + b"\r\n"


def _tls_context(verify: bool) -> ssl.SSLContext:
    if verify:
        return ssl.create_default_context()
    # Opportunistic TLS (RFC 7435): encrypt against passive listeners even when the peer's
    # certificate cannot be checked; most MX hosts have no name a sender could verify.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class SmtpSession:
    """One outbound connection; ``lmtp`` sessions speak LHLO and answer per recipient."""

    lmtp = False

    def __init__(self, settings: ClientSettings, host: str = "", port: int = 0, *,
                 unix_path: str = "", auth: tuple[str, str] | None = None) -> None:
        self.settings = settings
        self.host, self.port, self.unix_path = host, port, unix_path
        self.auth = auth
        self.smtp: aiosmtplib.SMTP | None = None
        self.messages = 0
        self.tls = False
        self.pipelining = False

    @property
    def peer(self) -> str:
        return f"unix:{self.unix_path}" if self.unix_path else f"[{self.host}]:{self.port}"

    @property
    def usable(self) -> bool:
        return self.smtp is not None and self.smtp.is_connected

    @property
    def _protocol(self) -> PipeliningProtocol:
        assert self.smtp is not None and isinstance(self.smtp.protocol, PipeliningProtocol)
        return self.smtp.protocol

    async def open(self) -> None:
        """Connect, greet, upgrade to TLS when offered, authenticate; SessionError otherwise."""
        s = self.settings
        if self.unix_path:
            smtp = aiosmtplib.SMTP(socket_path=self.unix_path, hostname=None, port=None,
                                   local_hostname=s.helo_name, timeout=s.connect_timeout,
                                   start_tls=False, use_tls=False)
        else:
            smtp = aiosmtplib.SMTP(hostname=self.host, port=self.port,
                                   local_hostname=s.helo_name, timeout=s.connect_timeout,
                                   start_tls=False, use_tls=False)
        self.smtp = smtp
        try:
            await smtp.connect()
            assert smtp.protocol is not None and smtp.transport is not None
            # See the module docstring. set_protocol makes the transport look the methods up
            # again: uvloop caches the bound data_received at connection time.
            smtp.protocol.__class__ = PipeliningProtocol
            smtp.transport.set_protocol(smtp.protocol)
            await self._greet()
            if s.tls != "none" and not self.unix_path and smtp.supports_extension("starttls"):
                await smtp.starttls(tls_context=_tls_context(s.tls_verify),
                                    server_hostname=self.host, timeout=s.command_timeout)
                self.tls = True
                await self._greet()
            elif s.tls == "require" and not self.unix_path:
                raise SessionError(f"{self.peer} does not offer STARTTLS and TLS is required",
                                   Reply(451, "4.7.4 TLS required but not offered"))
            if self.auth is not None:
                try:
                    await smtp.login(self.auth[0], self.auth[1], timeout=s.command_timeout)
                except aiosmtplib.SMTPAuthenticationError as e:
                    raise SessionError(f"{self.peer} refused our AUTH: {e.code} {e.message}",
                                       Reply(e.code, e.message)) from None
            self.pipelining = smtp.supports_extension("pipelining")
        except SessionError:
            self.close()
            raise
        except (TimeoutError, SMTPException, OSError, ssl.SSLError) as e:
            self.close()
            reply = Reply(e.code, e.message) if isinstance(e, aiosmtplib.SMTPResponseException) \
                else None
            raise SessionError(f"{self.peer}: {type(e).__name__}: {e}", reply) from None

    async def _greet(self) -> None:
        assert self.smtp is not None
        timeout = self.settings.command_timeout
        if self.lmtp:
            r = await self.smtp.execute_command(
                b"LHLO", self.settings.helo_name.encode("ascii"), timeout=timeout)
            if r.code != 250:
                raise aiosmtplib.SMTPHeloError(r.code, r.message)
            self.smtp.last_ehlo_response = r
            return
        try:
            await self.smtp.ehlo(hostname=self.settings.helo_name, timeout=timeout)
        except aiosmtplib.SMTPHeloError:
            await self.smtp.helo(hostname=self.settings.helo_name, timeout=timeout)

    async def send(self, mail_from: str, recipients: list[str], data: bytes) -> dict[str, Reply]:
        """One transaction; a reply per recipient. SessionError when the connection breaks."""
        smtp = self.smtp
        if smtp is None or not smtp.is_connected:
            raise SessionError(f"{self.peer}: not connected")
        timeout = self.settings.command_timeout
        utf8 = not all(a.isascii() for a in (mail_from, *recipients))
        if utf8 and not smtp.supports_extension("smtputf8"):
            r = Reply(553, "5.6.7 the destination does not support SMTPUTF8 addresses")
            return {a: r for a in recipients}
        options: list[str] = []
        if smtp.supports_extension("size"):
            options.append(f"SIZE={len(data)}")
        if smtp.supports_extension("8bitmime") and not data.isascii():
            options.append("BODY=8BITMIME")
        if utf8:
            options.append("SMTPUTF8")
        enc = "utf-8" if utf8 else "ascii"
        lines = [_line("MAIL FROM:", f"<{mail_from}>", options, enc),
                 *(_line("RCPT TO:", f"<{a}>", [], enc) for a in recipients)]
        proto = self._protocol
        stage = "MAIL/RCPT"
        try:
            if self.pipelining:
                raw = await proto.pipeline(lines, timeout)
            else:
                raw = []
                for ln in lines:
                    raw.extend(await proto.pipeline([ln], timeout))
                    if len(raw) == 1 and raw[0].code >= 400:
                        break  # MAIL refused: no RCPT makes sense
            mail = Reply(raw[0].code, raw[0].message)
            if mail.code == 421:  # the server is closing the connection: not our recipients' fault
                self.close()
                raise SessionError(f"{self.peer}: closing connection: {mail}", mail)
            out: dict[str, Reply] = {}
            if not mail.ok:
                out = {a: mail for a in recipients}
                await self._rset()
                return out
            accepted: list[str] = []
            for a, resp in zip(recipients, raw[1:]):
                out[a] = Reply(resp.code, resp.message)
                if out[a].ok:
                    accepted.append(a)
            if not accepted:
                await self._rset()
                return out
            stage = "DATA"
            replies = await proto.send_data(data, len(accepted) if self.lmtp else 1, timeout)
        except (TimeoutError, SMTPException, OSError) as e:
            self.close()
            raise SessionError(f"{self.peer}: {type(e).__name__} during {stage} "
                               f"(message {self.messages + 1} on this connection): {e}") from None
        if self.lmtp:
            for a, resp in zip(accepted, replies):
                out[a] = Reply(resp.code, resp.message)
        else:
            for a in accepted:
                out[a] = Reply(replies[0].code, replies[0].message)
        if not 200 <= replies[0].code < 300:
            await self._rset()
        self.messages += 1
        return out

    async def _rset(self) -> None:
        if self.smtp is None:
            return
        try:
            r = await self.smtp.execute_command(b"RSET", timeout=self.settings.command_timeout)
            if r.code != 250:
                self.close()
        except (TimeoutError, SMTPException, OSError):
            self.close()

    async def quit(self) -> None:
        if self.smtp is not None and self.smtp.is_connected:
            try:
                async with asyncio.timeout(2.0):
                    await self.smtp.quit()
            except (TimeoutError, SMTPException, OSError):
                pass
        self.close()

    def close(self) -> None:
        if self.smtp is not None:
            self.smtp.close()
