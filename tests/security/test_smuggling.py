"""SMTP smuggling: only CRLF.CRLF ends DATA; every other end-of-data variant is content."""

from __future__ import annotations

import time

import pytest

from tests.security.rawsmtp import Raw
from tests.support.server import ServerProcess

VARIANTS = [b"\n.\n", b"\r.\r", b"\r\n.\n", b"\n.\r\n", b"\r.\r\n", b"\r\n.\r", b"\r\n\x00.\r\n",
            b"\n\n.\n\n", b"\r\n.\x00\r\n"]
SMUGGLED = (b"MAIL FROM:<evil@example.net>\r\nRCPT TO:<victim@localhost>\r\nDATA\r\n"
            b"Subject: smuggled\r\n\r\nspoofed\r\n")


def session(srv: ServerProcess, variant: bytes) -> list[str]:
    c = Raw(srv.port)
    assert c.cmd("EHLO c.test").startswith("250")
    assert c.cmd("MAIL FROM:<a@example.org>").startswith("250")
    assert c.cmd("RCPT TO:<bob@localhost>").startswith("250")
    assert c.cmd("DATA").startswith("354")
    c.send(b"Subject: outer\r\n\r\nA" + variant + SMUGGLED + b".\r\nQUIT\r\n")
    replies = [c.reply()]
    replies.append(c.reply())
    assert c.closed()
    return replies


@pytest.mark.parametrize("variant", VARIANTS, ids=[repr(v) for v in VARIANTS])
def test_odd_end_of_data_is_content_normalized(elemta_server, variant: bytes) -> None:
    srv: ServerProcess = elemta_server()
    replies = session(srv, variant)
    # exactly one message: one 250 for DATA, then the 221 for QUIT; nothing was a command
    assert replies[0].startswith("250 2.0.0 Ok: queued as") and replies[1].startswith("221")
    [msg] = srv.wait_delivered("bob@localhost")
    body = msg.read_bytes()
    assert b"Subject: smuggled" in body and b"spoofed" in body
    time.sleep(0.2)
    assert srv.maildir_messages("victim@localhost") == []


@pytest.mark.parametrize("variant", VARIANTS[:6], ids=[repr(v) for v in VARIANTS[:6]])
def test_odd_end_of_data_rejected_in_strict_mode(elemta_server, variant: bytes) -> None:
    srv: ServerProcess = elemta_server(server={"bare_newline": "reject"})
    replies = session(srv, variant)
    assert replies[0].startswith("554 5.6.0") and replies[1].startswith("221")
    time.sleep(0.3)
    assert srv.maildir_messages("bob@localhost") == []
    assert srv.maildir_messages("victim@localhost") == []
