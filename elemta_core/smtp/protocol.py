"""aiosmtpd's SMTP protocol, tightened: limits, enhanced status codes and hook entry points.

aiosmtpd does the SMTP grammar; this subclass adds what an MTA edge needs and it lacks:
a connection cap, a command budget, the connect/unknown-command/data_start hooks, and
RFC 2034 enhanced status codes on every reply once the client has said EHLO.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import inspect
import logging
import re
from collections.abc import Awaitable, Callable
from email._header_value_parser import get_addr_spec, get_angle_addr
from typing import TYPE_CHECKING, Any

import aiosmtpd.smtp as aiosmtpd_smtp
from aiosmtpd.smtp import MISSING, SMTP

if TYPE_CHECKING:
    from elemta_core.smtp.handler import SMTPHandler

log = logging.getLogger("elemta.smtp")

_HAS_ENHANCED = re.compile(rb"^\d{3}[ -][245]\.\d{1,3}\.\d{1,3}(?: |$)")
# Enhanced codes for aiosmtpd's own replies (RFC 3463).
_ENHANCED_FOR: dict[bytes, bytes] = {
    b"221": b"2.0.0", b"250": b"2.0.0", b"252": b"2.0.0",
    b"421": b"4.4.2", b"451": b"4.3.0", b"452": b"4.3.1", b"454": b"4.7.0",
    b"500": b"5.5.2", b"501": b"5.5.4", b"502": b"5.5.1", b"503": b"5.5.1", b"504": b"5.5.4",
    b"530": b"5.7.0", b"535": b"5.7.8", b"538": b"5.7.11", b"550": b"5.0.0", b"552": b"5.3.4",
    b"553": b"5.1.3", b"554": b"5.7.0", b"555": b"5.5.4",
}
_NO_ENHANCED = frozenset({b"220", b"334", b"354"})

# The common case of a MAIL/RCPT argument: "<dot-atom@domain>" and maybe parameters. For it,
# the email package's parser (a third of the CPU of MAIL and RCPT) gives this very address;
# anything else (quoted local parts, comments, source routes, no brackets) goes to the parser.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_SIMPLE_ADDR = re.compile(
    rf"<({_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>(?=[ \t]|$)")


def add_enhanced_code(line: bytes) -> bytes:
    code = line[:3]
    if code in _NO_ENHANCED or _HAS_ENHANCED.match(line):
        return line
    enh = _ENHANCED_FOR.get(code)
    if enh is None:
        enh = code[:1] + b".0.0" if code[:1] in (b"2", b"4", b"5") else b""
        if not enh:
            return line
    return code + line[3:4] + enh + b" " + line[4:].lstrip()


#: Commands after which the client must wait for our reply (RFC 2920 3.1, RFC 3207 4.2).
_GROUP_ENDERS = frozenset({"EHLO", "HELO", "STARTTLS", "DATA", "QUIT", "AUTH"})


def parse_path(arg: str) -> tuple[str, str] | None:
    """(address, what follows it) of a MAIL/RCPT argument, or None when it does not parse."""
    if m := _SIMPLE_ADDR.match(arg):
        rest = arg[m.end():].lstrip(" \t")
        if not rest.startswith("("):  # a comment: the parser's business
            return m.group(1), rest
    return parse_path_fully(arg)


def parse_path_fully(arg: str) -> tuple[str, str] | None:
    address: Any
    try:
        if arg.lstrip().startswith("<"):
            address, rest = get_angle_addr(arg)
        else:
            address, rest = get_addr_spec(arg)
        return address.addr_spec, rest
    except Exception:  # noqa: BLE001 - the parser raises HeaderParseError, but hostile input
        return None  # also trips IndexError ('"'), AttributeError ('0@['), UnboundLocalError …


class _Commands(dict[str, Any]):
    """aiosmtpd's command table, policed: a command budget, protocol synchronization, NUL bytes,
    and unknown commands routed to the ``unknown_command`` hook."""

    def __init__(self, proto: ElemtaSMTP) -> None:
        # The class's smtp_* functions, bound on use: aiosmtpd binds all ~20 per connection.
        super().__init__(_introspection.commands(type(proto)))
        self.proto = proto

    def get(self, command: str, default: Any = None) -> Any:
        p = self.proto
        p.commands_seen += 1
        if p.commands_seen > p.max_commands:
            return p.too_many_commands
        # Data already waiting while we have not answered: the client pipelines without
        # PIPELINING having been offered, or talks past a command that ends a group (e.g.
        # plaintext smuggled behind STARTTLS). Postfix calls it a synchronization error.
        if p._reader._buffer and (  # type: ignore[attr-defined]
                command in _GROUP_ENDERS or p.session is None or not p.session.extended_smtp):
            return p.sync_error
        m = dict.get(self, command)
        if m is None:
            return functools.partial(p.unknown_command, command)
        return functools.partial(p.checked, m.__get__(p))


class _IntrospectionCache:
    """aiosmtpd's ``SMTP.__init__`` runs ``inspect.getmembers``, ``dir`` and ``inspect.signature``
    on the protocol and the handler for every connection: a sixth of the CPU of a
    connection-per-message load in a profile. The answers depend only on the classes, so they
    are computed once per class here and handed to aiosmtpd's module in place of ``inspect``.
    """

    def __init__(self) -> None:
        self._auth_names: dict[type, list[str]] = {}
        self._signatures: dict[Any, inspect.Signature] = {}
        self._dirs: dict[type, list[str]] = {}
        self._commands: dict[type, dict[str, Any]] = {}

    def dir(self, obj: Any) -> list[str]:
        # aiosmtpd filters dir() for smtp_*/handle_* methods: class attributes only. Elemta's
        # protocol gets its command table from ``commands`` instead.
        if isinstance(obj, ElemtaSMTP):
            return []
        names = self._dirs.get(type(obj))
        if names is None:
            names = self._dirs[type(obj)] = [n for n in dir(obj)
                                             if n.startswith(("smtp_", "handle_"))]
        return names

    def commands(self, cls: type) -> dict[str, Any]:
        """aiosmtpd's command table (``MAIL`` -> ``smtp_MAIL``), of unbound functions."""
        table = self._commands.get(cls)
        if table is None:
            table = self._commands[cls] = {n[5:]: getattr(cls, n) for n in dir(cls)
                                           if n.startswith("smtp_")}
        return table

    def getmembers(self, obj: Any) -> list[tuple[str, Any]]:
        # aiosmtpd only looks for auth_* members here; return just those, bound to obj.
        names = self._auth_names.get(type(obj))
        if names is None:
            names = [n for n, _ in inspect.getmembers(obj) if n.startswith("auth_")]
            self._auth_names[type(obj)] = names
        return [(n, getattr(obj, n)) for n in names]

    def signature(self, fn: Any) -> inspect.Signature:
        key = getattr(fn, "__func__", fn)
        sig = self._signatures.get(key)
        if sig is None:
            sig = self._signatures[key] = inspect.signature(fn)
        return sig


_aiosmtpd_log = logging.getLogger("mail.log")
_sanitized_log = aiosmtpd_smtp.sanitized_log


def _quiet_sanitized_log(func: Callable[..., None], msg: Any, *args: Any, **kw: Any) -> None:
    """aiosmtpd sanitizes every command line for a debug/info log call even when that logger
    is quieter than info (the default): ~1% of a loaded server's CPU."""
    if _aiosmtpd_log.isEnabledFor(logging.INFO):
        _sanitized_log(func, msg, *args, **kw)


aiosmtpd_smtp.sanitized_log = _quiet_sanitized_log
_introspection = _IntrospectionCache()
aiosmtpd_smtp.inspect = _introspection  # type: ignore[attr-defined,assignment]
aiosmtpd_smtp.dir = _introspection.dir  # type: ignore[attr-defined]  # shadows the builtin there


class ElemtaSMTP(SMTP):
    """One instance per connection, as in aiosmtpd."""

    event_handler: SMTPHandler

    def __init__(self, handler: SMTPHandler, *, max_commands: int, max_bad_commands: int,
                 line_length_limit: int, command_size_limit: int, proxy: bool = False,
                 **kw: Any) -> None:
        # aiosmtpd reads these as class attributes; set per instance before its __init__ uses them.
        self.line_length_limit = line_length_limit + 1  # + the transparency dot
        self.command_size_limit = command_size_limit
        # aiosmtpd's table is a class-level dict shared by all connections; give each its own.
        self.command_size_limits = collections.defaultdict(lambda: command_size_limit)
        self._deadline = 0.0
        super().__init__(handler, **kw)
        self.max_commands = max_commands
        self.max_bad_commands = max_bad_commands
        self.commands_seen = 0
        self.bad_commands = 0
        self._refused = False
        self._released = False
        self._in_ehlo = False
        self.proxy = proxy
        self.bad_recipients = 0
        self._smtp_methods = _Commands(self)

    # -- connection lifecycle --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._original_transport is None and not self.event_handler.admit(self):
            self._refused = True
            self.transport = transport
            transport.write(b"421 4.7.0 Too many connections, try again later\r\n")  # type: ignore[attr-defined]
            transport.close()
            return
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._refused:
            self.transport = None
            return
        try:
            super().connection_lost(error)
        finally:
            if not self._released:
                self._released = True
                self.event_handler.released(self)

    def _reset_timeout(self, duration: float | None = None) -> None:
        """aiosmtpd cancels and re-creates a timer for every command; here each command only
        moves the deadline, and the one timer, when it fires early, re-arms for the rest."""
        self._deadline = self.loop.time() + (duration or self._timeout_duration)
        h = self._timeout_handle
        if h is None or h.cancelled() or h.when() > self._deadline:
            if h is not None:
                h.cancel()
            self._timeout_handle = self.loop.call_at(self._deadline, self._idle_check)

    def _idle_check(self) -> None:
        if self._deadline - self.loop.time() > 0.001:  # there was activity since it was set
            self._timeout_handle = self.loop.call_at(self._deadline, self._idle_check)
            return
        self._timeout_cb()

    def _timeout_cb(self) -> None:
        # RFC 5321 4.5.3.2: tell the idle client why before closing.
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"421 4.4.2 Idle timeout, closing connection\r\n")  # type: ignore[attr-defined]
        super()._timeout_cb()  # type: ignore[no-untyped-call]

    def eof_received(self) -> bool | None:
        if self._refused:
            return False
        super().eof_received()
        # aiosmtpd keeps a plain-TCP transport half-open after EOF; if its handler task was
        # cancelled before it ran, nothing would ever close it. A client that sent EOF is done.
        return False

    async def _handle_client(self) -> None:
        h = self.event_handler
        if self.proxy and not await h.on_proxy(self):
            if self.transport is not None:
                self.transport.close()
            return
        reply = await h.on_connect(self)
        if reply is None and (pause := h.policy.greet_pause) > 0:
            await asyncio.sleep(pause)
        if reply is None and self._reader._buffer:  # type: ignore[attr-defined]
            reply = "554 5.5.1 Protocol error: you talked before my greeting"
            h.early_talker(self)
        if reply is not None:
            await self.push(reply)
            if self.transport is not None:
                self.transport.close()
            return
        await super()._handle_client()

    # -- replies ---------------------------------------------------------------------------

    async def push(self, status: str | bytes) -> None:
        """aiosmtpd's push, plus enhanced status codes, without its per-reply work for a debug
        log that is off."""
        if isinstance(status, str):
            status = status.encode("utf-8" if self.enable_SMTPUTF8 else "ascii", "replace")
        if self.session is not None and self.session.extended_smtp and not self._in_ehlo:
            if b"\r\n" in status:
                status = b"\r\n".join(add_enhanced_code(ln) for ln in status.split(b"\r\n"))
            else:
                status = add_enhanced_code(status)
        self._writer.write(status + b"\r\n")
        if _aiosmtpd_log.isEnabledFor(logging.DEBUG):
            _aiosmtpd_log.debug("%r << %r", self.session.peer if self.session else None, status)
        await self._writer.drain()

    async def close_with(self, reply: str) -> None:
        await self.push(reply)
        if self.transport is not None:
            self.transport.close()

    # -- commands --------------------------------------------------------------------------

    async def smtp_EHLO(self, hostname: str) -> None:
        self._in_ehlo = True
        try:
            await super().smtp_EHLO(hostname)
        finally:
            self._in_ehlo = False

    async def smtp_DATA(self, arg: str) -> None:
        # Only where aiosmtpd would answer 354 does Elemta take over; it reports every error.
        if not (self.session is not None and self.session.host_name and self.envelope is not None
                and self.envelope.rcpt_tos and not arg
                and not (self._auth_required and not self.session.authenticated)):
            await super().smtp_DATA(arg)
            return
        reply = await self.event_handler.on_data_start(self)
        if reply is not None:
            await self.push(reply)
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        content, problem = await self._read_data()
        if problem is not None:
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            await self.push(problem)
            return
        self.envelope.content = self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push("250 OK" if status is MISSING else status)

    async def _read_data(self) -> tuple[bytes, str | None]:
        """Read DATA up to CRLF.CRLF in large reads, not line by line as aiosmtpd does (a
        third of the CPU of a 100 KiB message went to per-line reads, and a search for
        ".\r\n" still stopped at every line ending in a full stop).

        Only CRLF "." CRLF ends the data; the CRLF that ended the DATA command counts, so an
        immediate ".\r\n" is an empty message. What the client sent after the terminator
        (pipelined commands) goes back to the reader. Each read moves the idle deadline.
        Limits are those of aiosmtpd: the whole data (with transparency dots) against SIZE,
        each line against the line limit.
        """
        reader = self._reader
        limit = self.data_size_limit or 0
        buf = bytearray()
        searched = 0  # buf[:searched] holds no terminator
        dropped = 0  # bytes discarded once over the limit
        while True:
            if buf[:3] == b".\r\n" and not dropped:
                end, resume = 0, 3
                break
            i = buf.find(b"\r\n.\r\n", max(searched - 4, 0))
            if i >= 0:
                end, resume = i + 2, i + 5
                break
            searched = len(buf)
            if limit and dropped + len(buf) > limit and len(buf) > 4:  # read on, keep nothing
                dropped += len(buf) - 4
                del buf[:-4]
                searched = len(buf)
            chunk = await reader.read(65536)
            if not chunk:
                raise asyncio.IncompleteReadError(bytes(buf), None)
            buf += chunk
            self._reset_timeout()
        if resume < len(buf):
            reader._buffer[:0] = buf[resume:]  # type: ignore[attr-defined]
        if dropped or (limit and end > limit):
            return b"", "552 Error: Too much mail data"
        content = bytes(buf[:end])
        if content and max(map(len, content.split(b"\r\n"))) > self.line_length_limit - 2:
            return b"", "500 Line too long (see RFC5321 4.5.3.1.6)"
        if content.startswith(b"."):
            content = content[1:]
        return content.replace(b"\r\n.", b"\r\n"), None

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd's address parser without the ``typing.Protocol`` class it builds per call."""
        if not arg:
            return "", ""
        parsed = parse_path(arg)
        if parsed is None:
            return None, None
        addr, rest = parsed
        if self.local_part_limit and len(addr.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return addr, rest

    async def unknown_command(self, command: str, arg: str | None) -> None:
        self.bad_commands += 1
        if self.bad_commands > self.max_bad_commands:
            await self.close_with("421 4.7.0 Too many errors, closing connection")
            return
        await self.push(await self.event_handler.on_unknown(self, command, arg))

    async def too_many_commands(self, arg: str | None) -> None:
        await self.close_with("421 4.7.0 Too many commands, closing connection")

    async def sync_error(self, arg: str | None) -> None:
        self.event_handler.protocol_violation(self, "command pipelining without PIPELINING")
        await self.close_with("554 5.5.0 Error: SMTP protocol synchronization")

    async def checked(self, method: Any, arg: str | None) -> None:
        if arg and "\x00" in arg:
            self.bad_commands += 1
            if self.bad_commands > self.max_bad_commands:
                await self.close_with("421 4.7.0 Too many errors, closing connection")
                return
            await self.push("500 5.5.2 Error: NUL character in command")
            return
        await method(arg)


ProtocolFactory = Callable[[], ElemtaSMTP]
ReplyAwaitable = Awaitable[str | None]
