"""A message to bob@localhost lands in the Maildir, through a real server and real clients."""

from __future__ import annotations

import smtplib

from tests.support.server import ServerProcess


def test_message_to_local_user_lands_in_maildir(elemta_server) -> None:
    srv: ServerProcess = elemta_server(delivery={"local_domains": ["localhost"]})
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
        s.ehlo("client.test")
        refused = s.sendmail("alice@example.org", ["bob@localhost"],
                             b"Subject: hello\r\nFrom: alice@example.org\r\n\r\nHi Bob\r\n")
    assert refused == {}
    msgs = srv.wait_delivered("bob@localhost")
    assert len(msgs) == 1
    data = msgs[0].read_bytes()
    assert data.startswith(b"Return-Path: <alice@example.org>\r\nDelivered-To: bob@localhost\r\n")
    assert b"Received: from client.test ([127.0.0.1])" in data
    assert data.endswith(b"\r\n\r\nHi Bob\r\n")
