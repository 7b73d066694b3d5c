"""A real `elemta serve` delivers to real servers on loopback: aiosmtpd, Postfix's smtp-sink,
an LMTP server on a unix socket, a second Elemta, and MX hosts from a loopback DNS server."""

from __future__ import annotations

import email
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from tests.integration.delivery.conftest import FAST, RELAY, send
from tests.support.dns_server import ZoneServer
from tests.support.ports import free_port, wait_port
from tests.support.server import ServerProcess
from tests.support.services import require_binary
from tests.support.smtp_sink import Sink, SinkHandler


def _dsn_blocks(raw: bytes) -> list[dict[str, str]]:
    msg = email.message_from_bytes(raw)
    (part,) = [p for p in msg.walk() if p.get_content_type() == "message/delivery-status"]
    return [dict(b) for b in part.get_payload()]


def test_relay_through_a_transport_rule(elemta_server, sink: Sink) -> None:
    srv: ServerProcess = elemta_server(server=RELAY, delivery={
        "transports": {"remote.test": f"smtp:[127.0.0.1]:{sink.port}"}})
    send(srv.port, "alice@localhost", ["bob@remote.test", "carol@remote.test"], "relayed")
    (got,) = sink.wait(1)
    assert got.mail_from == "alice@localhost"
    assert sorted(got.rcpt_tos) == ["bob@remote.test", "carol@remote.test"]  # one transaction
    assert b"Subject: relayed" in got.data and b"by mx.test (Elemta" in got.data


def test_4xx_then_success(elemta_server) -> None:
    tries: dict[str, int] = {}

    def policy(a: str) -> str | None:
        tries[a] = tries.get(a, 0) + 1
        return "451 4.7.1 greylisted, try again" if tries[a] <= 2 else None

    with Sink(SinkHandler(rcpt_policy=policy)) as sink:
        srv: ServerProcess = elemta_server(server=RELAY, queue=FAST, delivery={
            "transports": {"remote.test": f"smtp:[127.0.0.1]:{sink.port}"}})
        send(srv.port, "alice@localhost", ["bob@remote.test"])
        (got,) = sink.wait(1, timeout=20)
    assert got.rcpt_tos == ["bob@remote.test"] and tries["bob@remote.test"] == 3
    assert "status=deferred code=451" in srv.log() and "status=delivered" in srv.log()


def test_5xx_gives_a_dsn_in_the_senders_local_maildir_and_partial_failure(elemta_server) -> None:
    def policy(a: str) -> str | None:
        return "550 5.1.1 <gone@remote.test>: user unknown" if a.startswith("gone") else None

    with Sink(SinkHandler(rcpt_policy=policy)) as sink:
        srv: ServerProcess = elemta_server(server=RELAY, delivery={
            "transports": {"remote.test": f"smtp:[127.0.0.1]:{sink.port}"}})
        send(srv.port, "alice@localhost", ["bob@remote.test", "gone@remote.test", "carol@localhost"],
             "partly")
        (got,) = sink.wait(1)
        (dsn,) = srv.wait_delivered("alice@localhost")
    assert got.rcpt_tos == ["bob@remote.test"]
    assert len(srv.wait_delivered("carol@localhost")) == 1
    raw = dsn.read_bytes()
    assert raw.startswith(b"Return-Path: <>\r\n")  # from the null sender
    blocks = _dsn_blocks(raw)
    assert [b.get("Final-Recipient") for b in blocks[1:]] == ["rfc822; gone@remote.test"]
    assert blocks[1]["Status"] == "5.1.1" and blocks[1]["Action"] == "failed"
    assert "user unknown" in blocks[1]["Diagnostic-Code"]
    assert b"Subject: partly" in raw  # the original headers come back


def test_expiry_bounces(elemta_server) -> None:
    with Sink(SinkHandler(rcpt_policy=lambda a: "451 4.3.2 not now")) as sink:
        srv: ServerProcess = elemta_server(server=RELAY, queue={**FAST, "max_age": "2s"},
                                           delivery={"transports": {
                                               "remote.test": f"smtp:[127.0.0.1]:{sink.port}"}})
        qid = send(srv.port, "alice@localhost", ["slow@remote.test"])
        dsns = srv.wait_delivered("alice@localhost", timeout=20)
    assert len(dsns) == 1
    blocks = _dsn_blocks(dsns[0].read_bytes())
    assert blocks[1]["Status"] == "4.4.7" and blocks[1]["Action"] == "failed"
    assert "451 4.3.2 not now" in blocks[1]["Diagnostic-Code"]
    assert f"{qid} expired" in srv.log()
    assert not any((srv.state_dir / "spool" / st / qid).exists()
                   for st in ("active", "deferred", "hold", "failed"))


def test_mx_from_a_loopback_dns_server(elemta_server, sink: Sink) -> None:
    with ZoneServer() as dns:
        dns.mx("mx-domain.test", "down.mx-domain.test", 10).mx("mx-domain.test", "up.mx-domain.test", 20)
        dns.a("down.mx-domain.test", "127.0.0.2")  # nothing listens there
        dns.a("up.mx-domain.test", "127.0.0.1")
        dns.mx("null-domain.test", ".", 0)
        srv: ServerProcess = elemta_server(server=RELAY, dns={"nameservers": [dns.address]},
                                           delivery={"smtp_port": sink.port})
        send(srv.port, "alice@localhost", ["bob@mx-domain.test", "nobody@null-domain.test"])
        (got,) = sink.wait(1)
        (dsn,) = srv.wait_delivered("alice@localhost")
    assert got.rcpt_tos == ["bob@mx-domain.test"]
    blocks = _dsn_blocks(dsn.read_bytes())
    assert blocks[1]["Final-Recipient"] == "rfc822; nobody@null-domain.test"
    assert blocks[1]["Status"] == "5.1.10"


def test_lmtp_over_a_unix_socket(elemta_server, tmp_path: Path) -> None:
    sock = tmp_path / "lmtp.sock"

    def quota(a: str) -> str | None:
        return "552 5.2.2 mailbox full" if a.startswith("full") else None

    with Sink(SinkHandler(lmtp_policy=quota), unix_path=sock) as lmtp:
        srv: ServerProcess = elemta_server(server=RELAY, delivery={
            "transports": {"mailstore.test": f"lmtp:unix:{sock}"}})
        send(srv.port, "alice@localhost", ["bob@mailstore.test", "full@mailstore.test"])
        (got,) = lmtp.wait(1)
        (dsn,) = srv.wait_delivered("alice@localhost")
    assert got.rcpt_tos == ["bob@mailstore.test"]
    assert _dsn_blocks(dsn.read_bytes())[1]["Final-Recipient"] == "rfc822; full@mailstore.test"


def test_relay_to_a_second_elemta(elemta_server) -> None:
    inbound: ServerProcess = elemta_server(delivery={"local_domains": ["inbound.test"]})
    edge: ServerProcess = elemta_server(server=RELAY, delivery={
        "transports": {"inbound.test": f"smtp:[127.0.0.1]:{inbound.port}"}})
    send(edge.port, "alice@localhost", ["bob@inbound.test"], "hop")
    (msg,) = inbound.wait_delivered("bob@inbound.test")
    data = msg.read_bytes()
    assert data.count(b"Received: ") == 2 and b"Subject: hop" in data


def test_relay_to_postfix_smtp_sink(elemta_server) -> None:
    smtp_sink = require_binary("smtp-sink", "/usr/sbin/smtp-sink")
    port = free_port()
    # smtp-sink writes as nobody, who cannot enter pytest's private tmp_path.
    dump = Path(tempfile.mkdtemp(prefix="elemta-smtp-sink-"))
    dump.chmod(0o777)
    proc = subprocess.Popen([smtp_sink, "-u", "nobody", "-d", str(dump / "%M%S."), "-c",
                             f"127.0.0.1:{port}", "10"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        wait_port(port, 10)
        srv: ServerProcess = elemta_server(server=RELAY, delivery={
            "transports": {"sink.test": f"smtp:[127.0.0.1]:{port}"}})
        for i in range(3):
            send(srv.port, "alice@localhost", [f"u{i}@sink.test"], f"m{i}")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and srv.log().count("status=delivered") < 3:
            time.sleep(0.05)
        dumped = b"".join(p.read_bytes() for p in dump.iterdir())
    finally:
        proc.terminate()
        proc.wait(5)
        shutil.rmtree(dump, ignore_errors=True)
    assert srv.log().count("status=delivered") == 3
    assert all(f"Subject: m{i}".encode() in dumped for i in range(3))


def test_smarthost_with_auth(elemta_server) -> None:
    with Sink(SinkHandler(auth=("edge", "pw"))) as smarthost:
        srv: ServerProcess = elemta_server(server=RELAY, delivery={
            "relayhost": f"127.0.0.1:{smarthost.port}", "relayhost_username": "edge",
            "relayhost_password": "pw"})
        send(srv.port, "alice@localhost", ["x@anywhere.test", "y@elsewhere.test"])
        assert sorted(smarthost.wait_recipients(2)) == ["x@anywhere.test", "y@elsewhere.test"]


def test_many_messages_share_connections(elemta_server, sink: Sink) -> None:
    srv: ServerProcess = elemta_server(server=RELAY, delivery={
        "transports": {"remote.test": f"smtp:[127.0.0.1]:{sink.port}"}},
        queue={"destination_concurrency": 2})
    threads = [threading.Thread(target=send, args=(srv.port, "a@localhost", [f"u{i}@remote.test"]))
               for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(sink.wait(20)) == 20
    assert sink.handler.sessions <= 4  # at most 2 at a time, and they are reused


def test_sighup_reload_changes_routes(elemta_server) -> None:
    with Sink() as first, Sink() as second:
        srv: ServerProcess = elemta_server(server=RELAY, delivery={
            "transports": {"remote.test": f"smtp:[127.0.0.1]:{first.port}"}})
        send(srv.port, "alice@localhost", ["bob@remote.test"], "before")
        assert len(first.wait(1)) == 1
        srv.config["delivery"]["transports"]["remote.test"] = f"smtp:[127.0.0.1]:{second.port}"
        srv.write_config()
        reloads = srv.log().count("configuration reloaded")
        srv.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while srv.log().count("configuration reloaded") == reloads and time.monotonic() < deadline:
            time.sleep(0.05)
        send(srv.port, "alice@localhost", ["bob@remote.test"], "after")
        (got,) = second.wait(1)
    assert b"Subject: after" in got.data and len(first.messages) == 1
