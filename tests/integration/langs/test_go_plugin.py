"""go_filter (Go, hashicorp/go-plugin 1.0.1 from Debian) in a real ``elemta serve``, through
real SMTP sessions: its decisions, its list reload, a SIGKILL and the restart, and shutdown.
"""

from __future__ import annotations

import os
import signal
import smtplib
import time
import tomllib
from pathlib import Path
from typing import Any

from tests.integration.langs.conftest import GO_DIR, plugin_row, run_step
from tests.support.server import ServerProcess, to_toml

MSG = b"From: a@partner.example\r\nTo: bob@localhost\r\nSubject: hi\r\n\r\nHello\r\n"


def mail_from(srv: ServerProcess, sender: str) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
        s.ehlo("client.test")
        return s.mail(sender)


def own_catalog(tmp: Path, shipped: Path, list_text: str) -> tuple[Path, Path]:
    """A catalog running the built binary with its reputation list in ``tmp``."""
    entry: dict[str, Any] = tomllib.loads(shipped.read_text())["plugins"]["external"][0]
    binary = str(shipped.parent / entry["command"][0])
    listing = tmp / "reputation.txt"
    listing.write_text(list_text)
    entry.update(command=[binary], sha256={binary: entry["sha256"][entry["command"][0]]},
                 config={**entry["config"], "list_file": str(listing), "reload_interval_s": 0.1},
                 health_interval_ms=500)
    catalog = tmp / "catalog.toml"
    catalog.write_text(to_toml({"plugins.external": [entry]}))
    return catalog, listing


def test_go_filter_unit_tests_pass(go_filter_catalog: Path) -> None:
    r = run_step(["go", "test", "-count=1", "."], GO_DIR, "go_filter's go test",
                 env={"GO111MODULE": "off",
                      "GOPATH": f"{GO_DIR / 'build' / 'gopath'}:/usr/share/gocode"})
    assert r.stdout.startswith("ok "), r.stdout


def test_go_filter_judges_senders_over_smtp(elemta_server, go_filter_catalog: Path) -> None:
    srv: ServerProcess = elemta_server(plugins={"include": [str(go_filter_catalog)]},
                                       delivery={"local_domains": ["localhost"]})
    row = plugin_row(srv, "go_filter")
    assert (row["kind"], row["state"], row["version"], row["hooks"], row["mode"]) == \
        ("external", "ready", "1.0.0", ["mail_from"], "stream")
    assert (row["failure_policy"], row["priority"], row["timeout_ms"]) == ("tempfail", 50, 500)
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
        s.ehlo("client.test")
        code, text = s.mail("spammer@bad.example")
        assert (code, text) == (550, b"5.7.1 Sender address has a poor reputation")
        s.rset()
        code, text = s.mail("someone@mx.bulk.example")  # a subdomain of ".bulk.example"
        assert (code, text) == (450, b"4.7.1 Sender address is under observation, try again later")
        s.rset()
        assert s.mail("")[0] == 250  # the null sender is never judged
        s.rset()
        assert s.sendmail("a@partner.example", ["bob@localhost"], MSG) == {}
    assert len(srv.wait_delivered("bob@localhost")) == 1
    assert plugin_row(srv, "go_filter")["calls"] == 4


def test_go_filter_reloads_its_list_survives_sigkill_and_stops_with_the_server(
        elemta_server, go_filter_catalog: Path, tmp_path: Path) -> None:
    catalog, listing = own_catalog(tmp_path, go_filter_catalog, "bad.example -80\n")
    srv: ServerProcess = elemta_server(plugins={"include": [str(catalog)]})
    assert mail_from(srv, "x@new.example")[0] == 250

    # The list on disk changes: the running plugin picks it up without a restart.
    listing.write_text("bad.example -80\nnew.example -90  added while running\n")
    deadline = time.monotonic() + 10
    while mail_from(srv, "x@new.example")[0] != 550:
        assert time.monotonic() < deadline, srv.log()[-3000:]
        time.sleep(0.1)
    assert "reloaded" in srv.log()  # the plugin's stderr reaches the server's log

    # SIGKILL: every session meanwhile gets the failure policy (451 4.3.0) or, once the
    # supervisor has restarted the plugin, its real answer; none hangs.
    first = plugin_row(srv, "go_filter")
    os.kill(first["pid"], signal.SIGKILL)
    answers = set()
    deadline = time.monotonic() + 15
    while True:
        code, text = mail_from(srv, "x@bad.example")
        answers.add((code, text[:5]))
        row = plugin_row(srv, "go_filter")
        if row["state"] == "ready" and row["restarts"] >= 1 and code == 550:
            break
        assert time.monotonic() < deadline, (answers, row, srv.log()[-3000:])
        time.sleep(0.05)
    assert answers <= {(550, b"5.7.1"), (451, b"4.3.0")}, answers
    assert row["pid"] != first["pid"] and row["restarts"] == 1
    assert "exited" in row["last_error"] or "stream" in row["last_error"], row
    assert mail_from(srv, "x@new.example")[0] == 550  # the restarted plugin read the new list
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:  # calls in flight, one stream
        s.ehlo("client.test")
        for _ in range(20):
            assert s.mail("x@bad.example")[0] == 550
            s.rset()

    # The server stops: the plugin is asked to shut down and is gone with it.
    assert srv.stop() == 0
    pid = row["pid"]
    deadline = time.monotonic() + 5
    while _alive(pid):
        assert time.monotonic() < deadline, f"plugin {pid} outlived the server"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie not yet reaped by its (gone) parent is not running
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False
