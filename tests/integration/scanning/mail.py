"""Sending test mail to a real elemta and reading what it answered."""

from __future__ import annotations

import smtplib
from dataclasses import dataclass

from tests.support.server import ServerProcess


@dataclass
class Reply:
    code: int
    text: str

    @property
    def queue_id(self) -> str:
        return self.text.rpartition("queued as ")[2].strip()


def message(body: bytes, subject: str = "test") -> bytes:
    return (f"Subject: {subject}\r\nFrom: alice@example.org\r\nTo: bob@localhost\r\n"
            "Message-ID: <t1@example.org>\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\n"
            "\r\n").encode() + body


def send(srv: ServerProcess, data: bytes, rcpt: str = "bob@localhost") -> Reply:
    """One message over a real SMTP session; the reply to DATA, success or not."""
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=30) as s:
        s.ehlo("client.example.org")
        s.mail("alice@example.org")
        code, text = s.rcpt(rcpt)
        assert code == 250, (code, text)
        code, text = s.data(data)
        return Reply(code, text.decode("utf-8", "replace"))
