"""node_filter (Node.js, @grpc/grpc-js) in a real ``elemta serve``, through real SMTP
sessions: links and keywords in encoded bodies, a message over gRPC's default 4 MiB limit,
a SIGKILL and the restart.
"""

from __future__ import annotations

import base64
import os
import signal
import smtplib
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

from elemta_core.admin.client import call
from tests.integration.langs.conftest import NODE_DIR, plugin_row, run_step, wait_for
from tests.support.server import ServerProcess


def message(body: str, cte: str = "7bit", subtype: str = "plain") -> bytes:
    m = EmailMessage()
    m["From"] = "alice@example.org"
    m["To"] = "bob@localhost"
    m["Subject"] = "Hello"
    m.set_content(body, subtype=subtype, cte=cte)
    return m.as_bytes().replace(b"\n", b"\r\n")


def send(srv: ServerProcess, data: bytes) -> tuple[int, bytes]:
    """The reply to the end of DATA."""
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=30) as s:
        s.ehlo("client.test")
        try:
            s.sendmail("alice@example.org", ["bob@localhost"], data)
        except smtplib.SMTPDataError as e:
            return e.smtp_code, e.smtp_error
        return 250, b""


@pytest.fixture
def server(elemta_server, node_filter_catalog: Path) -> ServerProcess:
    return elemta_server(plugins={"include": [str(node_filter_catalog)]},  # type: ignore[no-any-return]
                         delivery={"local_domains": ["localhost"]})


def test_node_filter_unit_tests_pass(node_filter_catalog: Path) -> None:
    r = run_step(["node", "--test", "test/filter.test.js"], NODE_DIR, "node_filter's npm test")
    assert "# fail 0" in r.stdout and "# pass 7" in r.stdout, r.stdout


def test_node_filter_judges_bodies_over_smtp(server: ServerProcess) -> None:
    row = plugin_row(server, "node_filter")
    assert (row["state"], row["version"], row["hooks"], row["mode"]) == \
        ("ready", "1.0.0", ["message"], "stream")

    assert send(server, message("See https://docs.example/guide\n")) == (250, b"")
    [delivered] = server.wait_delivered("bob@localhost")
    assert b"X-Elemta-Node-Filter: pass (node_filter 1.0.0; link hosts: 1)\r\n" in \
        delivered.read_bytes()

    # A blocked link hidden in quoted-printable HTML, and in a base64 part.
    phish = '<p>Your account: <a href="https://login.phish.example/reset">reset it</a></p>\n'
    assert send(server, message(phish, "quoted-printable", "html")) == \
        (550, b"5.7.1 Message contains a link to a blocked site")
    assert send(server, message(phish, "base64", "html"))[0] == 550

    # A keyword: accepted for the client, but quarantined with the reason.
    assert send(server, message("Please do the Wire Transfer today.\n")) == (250, b"")
    entries = call(server.state_dir / "admin.sock", "quarantine.list")["entries"]
    assert [e["reason"] for e in entries] == ['keyword "wire transfer"'], entries
    assert len(server.maildir_messages("bob@localhost")) == 1


def test_node_filter_gets_a_message_over_grpcs_default_limit_whole(server: ServerProcess) -> None:
    # 5 MiB: gRPC refuses messages over 4 MiB unless the plugin lifts its limit. The filter
    # passes a message over max_scan_bytes unscanned and says how many bytes it got: all.
    filler = base64.b64encode(os.urandom(4_000_000)).decode()
    data = message("\n".join(filler[i:i + 76] for i in range(0, len(filler), 76)))
    assert len(data) > 5 * 1024 * 1024
    assert send(server, data) == (250, b"")
    [delivered] = server.wait_delivered("bob@localhost")
    assert (f"X-Elemta-Node-Filter: skipped (node_filter 1.0.0; {len(data)} bytes > "
            "max_scan_bytes)\r\n").encode() in delivered.read_bytes()
    assert plugin_row(server, "node_filter")["failures"] == 0


def test_node_filter_restarts_after_sigkill(server: ServerProcess) -> None:
    first = plugin_row(server, "node_filter")
    os.kill(first["pid"], signal.SIGKILL)
    row = wait_for(server, "node_filter", state="ready", restarts=1)
    assert row["pid"] != first["pid"]
    phish = message("https://phish.example/\n")
    deadline = time.monotonic() + 10
    while (reply := send(server, phish))[0] != 550:  # 451 while the new process connects
        assert reply[0] == 451 and time.monotonic() < deadline, (reply, server.log()[-3000:])
        time.sleep(0.05)
    assert send(server, message("clean\n")) == (250, b"")
