"""A real receiving SMTP/LMTP server on loopback (aiosmtpd in a thread), for delivery tests.

Replies are scripted per recipient, so a test can say "451 for carol twice, then 250" or
"550 for dave"; every accepted message is recorded with its envelope.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from aiosmtpd.controller import Controller, UnixSocketController
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP

from tests.support.ports import free_port

#: Given a recipient, a reply line to refuse it with, or None to accept it.
RcptPolicy = Callable[[str], "str | None"]


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    mail_options: list[str]
    tls: bool


@dataclass
class SinkHandler:
    rcpt_policy: RcptPolicy | None = None
    data_reply: str = "250 2.0.0 Ok: queued"
    #: LMTP: a per-recipient reply after DATA (None = 250).
    lmtp_policy: RcptPolicy | None = None
    pipelining: bool = True
    auth: tuple[str, str] | None = None
    messages: list[Received] = field(default_factory=list)
    sessions: int = 0
    ehlo_pipelining_seen: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_EHLO(self, server: SMTP, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        with self.lock:
            self.sessions += 1
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server: SMTP, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if self.rcpt_policy is not None:
            reply = self.rcpt_policy(address)
            if reply is not None:
                return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        tls = session.ssl is not None
        if isinstance(server, LMTP):
            replies = [(self.lmtp_policy(a) if self.lmtp_policy else None) or "250 2.0.0 Ok"
                       for a in envelope.rcpt_tos]
            ok = [a for a, r in zip(envelope.rcpt_tos, replies) if r.startswith("2")]
            if ok:
                self._record(Received(envelope.mail_from, ok, envelope.original_content,
                                      list(envelope.mail_options), tls))
            return "\r\n".join(replies)
        if self.data_reply.startswith("2"):
            self._record(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                  envelope.original_content, list(envelope.mail_options), tls))
        return self.data_reply

    def _record(self, r: Received) -> None:
        with self.lock:
            self.messages.append(r)


class _Authenticator:
    def __init__(self, user: str, password: str) -> None:
        self.user, self.password = user.encode(), password.encode()

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str,
                 auth_data: Any) -> Any:
        from aiosmtpd.smtp import AuthResult, LoginPassword

        ok = (isinstance(auth_data, LoginPassword) and auth_data.login == self.user
              and auth_data.password == self.password)
        return AuthResult(success=ok, handled=False)


class _SMTPController(Controller):
    def __init__(self, handler: SinkHandler, port: int, lmtp: bool,
                 tls: ssl.SSLContext | None, smtputf8: bool) -> None:
        kwargs: dict[str, Any] = {"enable_SMTPUTF8": smtputf8}
        if handler.auth is not None:
            kwargs.update(authenticator=_Authenticator(*handler.auth), auth_require_tls=False)
        super().__init__(handler, hostname="127.0.0.1", port=port, server_hostname="sink.test",
                         ident="sink", **kwargs)
        self.lmtp = lmtp
        self.tls = tls

    def factory(self) -> SMTP:
        cls = LMTP if self.lmtp else SMTP
        return cls(self.handler, tls_context=self.tls, **self.SMTP_kwargs)


class _UnixLMTPController(UnixSocketController):
    def factory(self) -> SMTP:
        return LMTP(self.handler, hostname="sink.test")


class Sink:
    """``with Sink() as sink: ... sink.port ... sink.wait(1)``."""

    def __init__(self, handler: SinkHandler | None = None, *, lmtp: bool = False,
                 unix_path: Path | None = None, tls: ssl.SSLContext | None = None,
                 smtputf8: bool = True, port: int = 0) -> None:
        self.handler = handler or SinkHandler()
        self.port = 0 if unix_path else (port or free_port())
        self.unix_path = unix_path
        self.controller: Controller | UnixSocketController
        if unix_path is not None:
            self.controller = _UnixLMTPController(self.handler, unix_socket=str(unix_path))
        else:
            self.controller = _SMTPController(self.handler, self.port, lmtp, tls, smtputf8)

    @property
    def messages(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.messages)

    def recipients(self) -> list[str]:
        return [a for m in self.messages for a in m.rcpt_tos]

    def wait(self, count: int, timeout: float = 15.0) -> list[Received]:
        """Wait until ``count`` messages arrived (or the timeout); returns what arrived."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.messages

    def wait_recipients(self, count: int, timeout: float = 15.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while len(self.recipients()) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.recipients()

    def start(self) -> Self:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
