"""clamd (real, EICAR-only database) through a real elemta: EICAR rejected with its name,
clean mail passes with the header, quarantine, a stopped clamd, clamd's size limit and ours."""

from __future__ import annotations

import json

from elemta_core.message.message import Message
from tests.integration.scanning.conftest import CLAMD_STREAM_MAX
from tests.integration.scanning.mail import message, send
from tests.support.clamd_server import EICAR, SIGNATURE_NAME, ClamdServer
from tests.support.rspamd_server import RspamdServer
from tests.support.server import ServerProcess

CLEAN = message(b"Hello Bob, the report is attached.\r\n")
INFECTED = message(EICAR + b"\r\n", subject="eicar")
FOUND = f"{SIGNATURE_NAME}.UNOFFICIAL"  # clamd's name for a signature outside its official DBs
LARGE = message(b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n"
                * ((CLAMD_STREAM_MAX + 4096) // 64))


def antivirus(elemta_server, clamd: ClamdServer, enabled: tuple[str, ...] = ("antivirus",),  # type: ignore[no-untyped-def]
              sections: dict[str, dict[str, object]] | None = None,
              **section: object) -> ServerProcess:
    srv: ServerProcess = elemta_server(delivery={"local_domains": ["localhost"]},
                                       plugins={"enabled": list(enabled)},
                                       antivirus={"clamd": clamd.address, **section},
                                       **(sections or {}))
    srv.env["COLUMNS"] = "200"  # the CLI's tables, unwrapped
    return srv


def delivered(srv: ServerProcess, count: int = 1) -> list[Message]:
    paths = srv.wait_delivered("bob@localhost", count)
    assert len(paths) == count, srv.log()
    return [Message(p.read_bytes()) for p in paths]


def test_eicar_rejected_clean_passes_both_scanners(elemta_server, clamd: ClamdServer,  # type: ignore[no-untyped-def]
                                                   rspamd: RspamdServer) -> None:
    srv = antivirus(elemta_server, clamd, enabled=("antivirus", "antispam"),
                    max_size=CLAMD_STREAM_MAX // 2,
                    sections={"antispam": {"rspamd_url": rspamd.url}})
    r = send(srv, INFECTED)
    assert (r.code, r.text) == (554, f"5.7.1 Message contains a virus: {FOUND}")
    assert f"infected with {FOUND}" in srv.log()
    assert send(srv, CLEAN).code == 250
    [msg] = delivered(srv)
    assert msg.get("X-Virus-Scanned") == "clean (ClamAV using Elemta on mx.test)"
    assert msg.get("X-Spam-Score") is not None  # Rspamd scanned it too
    # Over our max_size: passed unscanned (oversize = "skip"), and says so.
    assert send(srv, LARGE).code == 250
    big = delivered(srv, 2)
    assert {m.get("X-Virus-Scanned") for m in big} == {
        "clean (ClamAV using Elemta on mx.test)",
        "skipped, too large (ClamAV using Elemta on mx.test)"}


def test_quarantine_then_delete(elemta_server, clamd: ClamdServer) -> None:  # type: ignore[no-untyped-def]
    srv = antivirus(elemta_server, clamd, action="quarantine")
    r = send(srv, INFECTED)
    assert r.code == 250
    [entry] = json.loads(srv.cli("quarantine", "list", "--json").stdout)["entries"]
    assert (entry["queue_id"], entry["plugin"], entry["reason"]) == (
        r.queue_id, "antivirus", f"virus {FOUND}")
    assert entry["tags"]["virus.name"] == FOUND
    assert srv.maildir_messages("bob@localhost") == []
    table = srv.cli("quarantine", "list").stdout
    assert r.queue_id in table and "antivirus" in table
    assert srv.cli("quarantine", "delete", r.queue_id).stdout.strip() == f"deleted {r.queue_id}"
    assert json.loads(srv.cli("quarantine", "list", "--json").stdout)["entries"] == []

    # With the daemon stopped: list, show and delete work on the directory; release cannot.
    kept = send(srv, INFECTED).queue_id
    srv.stop()
    offline = srv.cli("quarantine", "list").stdout
    assert "daemon not running" in offline and kept in offline
    assert f"virus {FOUND}" in srv.cli("quarantine", "show", kept).stdout
    refused = srv.cli("quarantine", "release", kept, check=False)
    assert refused.returncode == 3 and "not running" in refused.stderr
    assert srv.cli("quarantine", "delete", kept).stdout.strip() == f"deleted {kept}"
    assert json.loads(srv.cli("quarantine", "list", "--json").stdout)["entries"] == []
    bad = srv.cli("quarantine", "show", "../spool", check=False)
    assert bad.returncode == 1 and "not a queue id" in bad.stderr


def test_stopped_clamd_applies_the_failure_policy(elemta_server, own_clamd) -> None:  # type: ignore[no-untyped-def]
    clamd: ClamdServer = own_clamd()
    strict = antivirus(elemta_server, clamd)
    rejecting = antivirus(elemta_server, clamd, failure_policy="reject")
    assert send(strict, CLEAN).code == 250
    clamd.stop()
    r = send(strict, CLEAN)
    assert r.code == 451 and r.text.startswith("4.3.0")
    r = send(rejecting, CLEAN)
    assert r.code == 554 and r.text.startswith("5.3.0")
    assert "cannot connect to clamd" in rejecting.log()
    assert len(strict.wait_delivered("bob@localhost")) == 1  # only the first one


def test_past_clamds_stream_limit_is_oversize(elemta_server, clamd: ClamdServer) -> None:  # type: ignore[no-untyped-def]
    srv = antivirus(elemta_server, clamd, oversize="reject")  # max_size: clamd's default 25 MiB
    r = send(srv, LARGE)
    assert (r.code, r.text) == (552, "5.3.4 Message too large to be scanned for viruses")
    assert "past clamd's StreamMaxLength" in srv.log()
