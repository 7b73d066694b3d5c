"""Rspamd (real, offline) through a real elemta: GTUBE rejected, clean mail passes with the
score headers and Rspamd's own milter headers, thresholds, quarantine and release, a stopped
Rspamd, the size limit."""

from __future__ import annotations

import json

from elemta_core.message.message import Message
from tests.integration.scanning.mail import message, send
from tests.support.rspamd_server import GTUBE, RspamdServer
from tests.support.server import ServerProcess

CLEAN = message(b"Hello Bob, lunch on Friday?\r\n")
SPAM = message(GTUBE + b"\r\n", subject="gtube")


def antispam(elemta_server, rspamd: RspamdServer, **section: object) -> ServerProcess:  # type: ignore[no-untyped-def]
    return elemta_server(delivery={"local_domains": ["localhost"]},
                         plugins={"enabled": ["antispam"]},
                         antispam={"rspamd_url": rspamd.url, **section})


def delivered(srv: ServerProcess, count: int = 1) -> list[Message]:
    paths = srv.wait_delivered("bob@localhost", count)
    assert len(paths) == count, srv.log()
    return [Message(p.read_bytes()) for p in paths]


def test_gtube_rejected_clean_passes_with_headers(elemta_server, rspamd: RspamdServer) -> None:
    srv = antispam(elemta_server, rspamd)
    r = send(srv, SPAM)
    assert (r.code, r.text) == (550, "5.7.1 Gtube pattern")
    r = send(srv, CLEAN)
    assert r.code == 250
    [msg] = delivered(srv)
    score = msg.get("X-Spam-Score")
    assert score is not None and float(score) < 15
    assert (msg.get("X-Spam-Status") or "").startswith(f"No, score={score} required=15.00")
    # Rspamd's milter block, applied: it saw our queue id.
    assert msg.get("X-Rspamd-Queue-Id") == r.queue_id
    assert (msg.get("X-Spamd-Result") or "").startswith("default: False")
    assert msg.get("X-Spam") is None
    assert "rspamd=reject" in srv.log()


def test_thresholds_quarantine_and_release(elemta_server, rspamd: RspamdServer) -> None:
    # Every message reaches add_header_score; GTUBE's forced reject is quarantined instead.
    srv = antispam(elemta_server, rspamd, add_header_score=-1000.0, reject_score=1000.0,
                   reject_action="quarantine")
    assert send(srv, CLEAN).code == 250
    [msg] = delivered(srv)
    assert msg.get("X-Spam") == "Yes"
    assert (msg.get("X-Spam-Status") or "").startswith("Yes, ")

    r = send(srv, SPAM)
    assert r.code == 250
    [entry] = json.loads(srv.cli("quarantine", "list", "--json").stdout)["entries"]
    assert entry["queue_id"] == r.queue_id and entry["plugin"] == "antispam"
    assert entry["reason"].startswith("spam score 15.00, rspamd action reject")
    assert entry["tags"]["spam.action"] == "reject"
    shown = srv.cli("quarantine", "show", r.queue_id).stdout
    assert "X-Spam-Status: Yes, score=15.00" in shown and "reason:" in shown
    raw = srv.cli("quarantine", "show", "--raw", r.queue_id).stdout
    assert GTUBE.decode() in raw

    assert srv.cli("quarantine", "release", r.queue_id).stdout.strip() == f"released {r.queue_id}"
    msgs = delivered(srv, 2)
    assert any(GTUBE in m.raw for m in msgs)
    assert json.loads(srv.cli("quarantine", "list", "--json").stdout)["entries"] == []
    again = srv.cli("quarantine", "release", r.queue_id, check=False)
    assert again.returncode == 1 and "no quarantined message" in again.stderr


def test_stopped_rspamd_applies_the_failure_policy(elemta_server, own_rspamd) -> None:  # type: ignore[no-untyped-def]
    rspamd: RspamdServer = own_rspamd()
    strict = antispam(elemta_server, rspamd)  # no section policy: the plugin's, tempfail
    lenient = antispam(elemta_server, rspamd, failure_policy="continue")
    assert send(strict, CLEAN).code == 250
    rspamd.stop()
    r = send(strict, CLEAN)
    assert r.code == 451 and r.text.startswith("4.3.0")
    assert "plugin antispam failed on message (unavailable: " in strict.log()
    r = send(lenient, CLEAN)
    assert r.code == 250
    [msg] = delivered(lenient)
    assert msg.get("X-Spam-Score") is None


def test_over_max_size_is_delivered_unscanned(elemta_server, rspamd: RspamdServer) -> None:
    srv = antispam(elemta_server, rspamd, max_size=1024)
    assert send(srv, message(GTUBE + b"\r\n" + b"padding line\r\n" * 100)).code == 250
    [msg] = delivered(srv)
    assert msg.get("X-Spam-Score") is None
    assert "not spam-scanned: size" in srv.log()
