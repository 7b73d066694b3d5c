"""Every limit answers with its proper code, through a real server and raw/real clients."""

from __future__ import annotations

import socket
import smtplib
import time

import pytest

from tests.support.server import ServerProcess


def talk(port: int) -> tuple[socket.socket, "LineReader"]:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    r = LineReader(s)
    assert r.reply().startswith("220 ")
    return s, r


class LineReader:
    def __init__(self, s: socket.socket) -> None:
        self.s = s
        self.buf = b""

    def line(self) -> str:
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed; pending {self.buf!r}")
            self.buf += chunk
        ln, _, self.buf = self.buf.partition(b"\r\n")
        return ln.decode()

    def reply(self) -> str:
        lines = [self.line()]
        while lines[-1][3:4] == "-":
            lines.append(self.line())
        return "\n".join(lines)

    def cmd(self, text: str) -> str:
        self.s.sendall(text.encode() + b"\r\n")
        return self.reply()


@pytest.fixture
def limited(elemta_server) -> ServerProcess:
    return elemta_server(server={
        "max_message_size": 2000, "max_recipients": 3, "max_commands": 30,
        "max_bad_commands": 3, "idle_timeout": 1.0, "max_connections": 3,
        "max_line_length": 200,
    })


def test_size_limit_is_advertised_and_enforced(limited: ServerProcess) -> None:
    with smtplib.SMTP("127.0.0.1", limited.port, timeout=10) as s:
        code, caps = s.ehlo("c.test")
        assert b"SIZE 2000" in caps
        # the declared SIZE is refused before any data
        code, msg = s.docmd("MAIL FROM:<a@example.org> SIZE=5000")
        assert code == 552 and msg.startswith(b"5.3.4")
    # a client that does not declare SIZE is stopped at the end of DATA
    s, r = talk(limited.port)
    r.cmd("EHLO c.test")
    assert r.cmd("MAIL FROM:<a@example.org>").startswith("250")
    assert r.cmd("RCPT TO:<bob@localhost>").startswith("250")
    assert r.cmd("DATA").startswith("354")
    s.sendall(b"Subject: big\r\n\r\n" + (b"y" * 150 + b"\r\n") * 20 + b".\r\n")
    assert r.reply().startswith("552 5.3.4")
    assert r.cmd("NOOP").startswith("250")  # the session goes on
    s.close()
    assert limited.maildir_messages("bob@localhost") == []


def test_recipient_limit(limited: ServerProcess) -> None:
    s, r = talk(limited.port)
    assert r.cmd("EHLO c.test").startswith("250")
    assert r.cmd("MAIL FROM:<a@example.org>").startswith("250 2.1.0")
    for i in range(3):
        assert r.cmd(f"RCPT TO:<u{i}@localhost>").startswith("250 2.1.5")
    assert r.cmd("RCPT TO:<u9@localhost>") == "452 4.5.3 Too many recipients"
    s.close()


def test_line_length_limits(limited: ServerProcess) -> None:
    s, r = talk(limited.port)
    assert r.cmd("EHLO c.test").startswith("250")
    assert r.cmd("NOOP " + "x" * 600).startswith("500 5.5.2")
    assert r.cmd("MAIL FROM:<a@example.org>").startswith("250")
    assert r.cmd("RCPT TO:<bob@localhost>").startswith("250")
    assert r.cmd("DATA").startswith("354")
    s.sendall(b"Subject: long\r\n\r\n" + b"z" * 500 + b"\r\n.\r\n")
    assert r.reply().startswith("500 5.5.2 Line too long")
    s.close()
    assert limited.maildir_messages("bob@localhost") == []


def test_bad_command_limit_closes(limited: ServerProcess) -> None:
    s, r = talk(limited.port)
    for _ in range(3):
        assert r.cmd("BOGUS").startswith("500 5.5.2")
    assert r.cmd("BOGUS").startswith("421 4.7.0")
    with pytest.raises(ConnectionError):
        r.line()


def test_command_count_limit_closes(limited: ServerProcess) -> None:
    s, r = talk(limited.port)
    replies = [r.cmd("NOOP") for _ in range(30)]
    assert all(x.startswith("250") for x in replies)
    assert r.cmd("NOOP").startswith("421 4.7.0 Too many commands")
    with pytest.raises(ConnectionError):
        r.line()


def test_idle_timeout_says_421(limited: ServerProcess) -> None:
    s, r = talk(limited.port)
    t0 = time.monotonic()
    assert r.line().startswith("421 4.4.2")
    assert time.monotonic() - t0 < 5
    with pytest.raises(ConnectionError):
        r.line()


def test_idle_timeout_counts_from_the_last_command(limited: ServerProcess) -> None:
    s, r = talk(limited.port)  # idle_timeout = 1.0
    t0 = time.monotonic()
    for _ in range(3):
        time.sleep(0.6)
        assert r.cmd("NOOP").startswith("250")  # each command moves the deadline
    assert r.line().startswith("421 4.4.2")
    idle = time.monotonic() - t0 - 1.8
    assert 0.9 < idle < 4, idle


def test_max_connections(limited: ServerProcess) -> None:
    held = [talk(limited.port) for _ in range(3)]
    s = socket.create_connection(("127.0.0.1", limited.port), timeout=10)
    assert LineReader(s).line().startswith("421 4.7.0 Too many connections")
    for sock, _ in held:
        sock.close()
    time.sleep(0.2)
    s2, r2 = talk(limited.port)  # a slot is free again
    assert r2.cmd("QUIT").startswith("221")


def test_pipelining(limited: ServerProcess) -> None:
    s, r = talk(limited.port)
    caps = r.cmd("EHLO c.test")
    assert "PIPELINING" in caps and "ENHANCEDSTATUSCODES" in caps
    s.sendall(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<bob@localhost>\r\n"
              b"RCPT TO:<carol@localhost>\r\nDATA\r\n")
    assert [r.reply()[:3] for _ in range(4)] == ["250", "250", "250", "354"]
    s.sendall(b"Subject: piped\r\n\r\nbody\r\n.\r\nQUIT\r\n")
    assert r.reply().startswith("250 2.0.0 Ok: queued as ")
    assert r.reply().startswith("221")
    assert len(limited.wait_delivered("bob@localhost")) == 1
    assert len(limited.wait_delivered("carol@localhost")) == 1


def test_only_crlf_dot_crlf_ends_data(limited: ServerProcess) -> None:
    s, r = talk(limited.port)
    r.cmd("EHLO c.test")
    r.cmd("MAIL FROM:<a@example.org>")
    r.cmd("RCPT TO:<bob@localhost>")
    assert r.cmd("DATA").startswith("354")
    s.sendall(b"Subject: smuggle\r\n\r\nline\n.\nMAIL FROM:<x@evil>\r\nmore\r.\rend\r\n.\r\n")
    assert r.reply().startswith("250 2.0.0")
    msgs = limited.wait_delivered("bob@localhost")
    assert len(msgs) == 1
    # bare LF/CR were content, stored normalized to CRLF (bare_newline = "normalize")
    assert msgs[0].read_bytes().endswith(
        b"\r\n\r\nline\r\n.\r\nMAIL FROM:<x@evil>\r\nmore\r\n.\r\nend\r\n")
