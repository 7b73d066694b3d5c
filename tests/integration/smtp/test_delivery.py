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


def test_local_mail_is_in_the_maildir_when_250_is_sent(elemta_server) -> None:
    """Direct delivery: the Maildir copy is the durable copy; the spool is never written."""
    srv: ServerProcess = elemta_server(delivery={"local_domains": ["localhost"]})
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
        s.ehlo("client.test")
        assert s.sendmail("alice@example.org", ["bob@localhost", "carol@localhost"],
                          b"Subject: direct\r\n\r\nx\r\n") == {}
        # no waiting: both copies exist the moment the client has its 250
        for user in ("bob", "carol"):
            assert len(list((srv.state_dir / "mail" / "localhost" / user / "new").iterdir())) == 1
    spool = srv.state_dir / "spool"
    assert not [p for d in spool.iterdir() if d.is_dir() for p in d.iterdir()]
    assert "delivered from=<alice@example.org> nrcpt=2" in srv.log()


def test_direct_local_off_queues_first(elemta_server) -> None:
    srv: ServerProcess = elemta_server(delivery={"local_domains": ["localhost"],
                                                 "direct_local": False})
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
        assert s.sendmail("alice@example.org", ["bob@localhost"], b"Subject: q\r\n\r\nx\r\n") == {}
    assert len(srv.wait_delivered("bob@localhost")) == 1
    assert "queued from=<alice@example.org> nrcpt=1" in srv.log()
