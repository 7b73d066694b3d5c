from __future__ import annotations

import smtplib
from collections.abc import Iterator
from email.utils import make_msgid

import pytest

from tests.support.smtp_sink import Sink, SinkHandler


def send(port: int, mail_from: str, rcpts: list[str], subject: str = "hello") -> str:
    """Submit one message; returns its queue id."""
    msg = (f"From: {mail_from or 'nobody@x.test'}\r\nSubject: {subject}\r\n"
           f"Message-ID: {make_msgid(domain='client.test')}\r\n\r\nbody of {subject}\r\n").encode()
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.ehlo("client.test")
        assert s.mail(mail_from)[0] == 250
        for r in rcpts:
            assert s.rcpt(r)[0] == 250
        code, resp = s.data(msg)
        assert code == 250, resp
        return resp.decode().rsplit(" ", 1)[1]


@pytest.fixture
def sink() -> Iterator[Sink]:
    with Sink(SinkHandler()) as s:
        yield s


RELAY = {"relay_networks": ["127.0.0.0/8"]}
FAST = {"retry_schedule": ["1s"], "jitter": 0.0}
