"""Every example plugin through a real server and real SMTP sessions."""

from __future__ import annotations

import json
import shutil
import smtplib
import time
from pathlib import Path

from tests.integration.external.conftest import EXAMPLES, pinned_entry
from tests.support.server import ServerProcess


def test_examples_enabled_by_include_with_committed_catalogs(elemta_server) -> None:
    """The committed catalog.toml files work as-is: [plugins] include enables them."""
    srv: ServerProcess = elemta_server(plugins={"include": [
        str(EXAMPLES / "python_filter" / "catalog.toml"),
        str(EXAMPLES / "allowdeny" / "catalog.toml"),
    ]})
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
        s.ehlo("client.test")
        code, _ = s.mail("bulk-news@example.org")  # allowdeny: deny sender regex
        assert code == 550
        s.rset()
        refused = s.sendmail("alice@example.org", ["bob@localhost"],
                             b"Subject: hello\r\nFrom: alice@example.org\r\n\r\nHi\r\n")
        assert refused == {}
        try:
            s.sendmail("alice@example.org", ["bob@localhost"],
                       b"Subject: cheap viagra\r\nFrom: alice@example.org\r\n\r\nbuy\r\n")
            raise AssertionError("spam was accepted")
        except smtplib.SMTPDataError as e:
            assert e.smtp_code == 550 and b"content policy" in e.smtp_error
    msgs = srv.wait_delivered("bob@localhost")
    assert len(msgs) == 1
    assert b"X-Elemta-Filter: pass (python_filter 1.0.0)\r\n" in msgs[0].read_bytes()
    rows = {p["name"]: p for p in json.loads(srv.cli("plugin", "list", "--json").stdout)["plugins"]}
    assert rows["allowdeny"]["kind"] == "external" and rows["allowdeny"]["state"] == "ready"
    assert rows["allowdeny"]["hooks"] == ["connect", "helo", "mail_from", "rcpt_to"]
    assert rows["python_filter"]["hooks"] == ["message"] and rows["python_filter"]["pid"] > 0
    assert rows["python_filter"]["calls"] == 2 and rows["python_filter"]["avg_latency_us"] > 0


def test_python_filter_quarantine_and_required_header(elemta_server, tmp_path: Path) -> None:
    entry = pinned_entry(tmp_path, EXAMPLES / "python_filter" / "plugin.py", "python_filter",
                         config={"quarantine_subjects": ["(?i)invoice"],
                                 "required_headers": ["From", "Date"],
                                 "add_header": "X-Checked"})
    srv: ServerProcess = elemta_server(plugins={"external": [entry]})
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
        try:
            s.sendmail("a@example.org", ["bob@localhost"], b"Subject: x\r\nFrom: a@b\r\n\r\nx\r\n")
            raise AssertionError("accepted without Date")
        except smtplib.SMTPDataError as e:
            assert e.smtp_code == 550 and b"5.6.0" in e.smtp_error and b"Date" in e.smtp_error
        hdr = b"From: a@b\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
        s.sendmail("a@example.org", ["bob@localhost"], b"Subject: your invoice\r\n" + hdr + b"\r\nx\r\n")
        s.sendmail("a@example.org", ["bob@localhost"], b"Subject: fine\r\n" + hdr + b"\r\nok\r\n")
    msgs = srv.wait_delivered("bob@localhost")
    assert len(msgs) == 1 and b"X-Checked: pass" in msgs[0].read_bytes()
    quarantined = [p for p in (srv.state_dir / "quarantine").rglob("*") if p.is_file()]
    assert quarantined, "the invoice was not quarantined"


def test_greylist_tempfails_then_passes_and_survives_a_restart(elemta_server,
                                                              tmp_path: Path) -> None:
    entry = pinned_entry(tmp_path, EXAMPLES / "greylist" / "plugin.py", "greylist",
                         config={"delay_s": 1, "retry_window_s": 60})
    srv: ServerProcess = elemta_server(plugins={"external": [entry]})
    msg = b"Subject: hi\r\nFrom: a@example.org\r\n\r\nhi\r\n"
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
        s.ehlo("client.test")
        s.mail("a@example.org")
        code, text = s.rcpt("bob@localhost")
        assert code == 451 and b"4.7.1 Greylisted" in text
        code, _ = s.rcpt("bob@localhost")  # too early
        assert code == 451
        s.rset()
    time.sleep(1.2)
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
        assert s.sendmail("a@example.org", ["bob@localhost"], msg) == {}
    # The store persists in the plugin's state dir: a restarted server remembers the pass.
    srv.stop()
    assert (srv.state_dir / "plugins" / "greylist" / "greylist.db").exists()
    srv.start()
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
        assert s.sendmail("a@example.org", ["bob@localhost"], msg) == {}
        s.ehlo("client.test")
        s.mail("other@example.org")
        assert s.rcpt("bob@localhost")[0] == 451  # a new triplet is greylisted
    # at least: a restart right after a delivery may redeliver (the queue is at-least-once)
    assert len(srv.wait_delivered("bob@localhost", 2)) >= 2


def test_allowdeny_rules_reload_when_the_file_changes(elemta_server, tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[deny]\ndomains = ["spam.example"]\nrecipients = ["^nobody@"]\n')
    entry = pinned_entry(tmp_path, EXAMPLES / "allowdeny" / "plugin.py", "allowdeny",
                         config={"rules_file": str(rules), "reload_interval_s": 0.2})
    srv: ServerProcess = elemta_server(plugins={"external": [entry]})
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
        s.ehlo("client.test")
        assert s.mail("x@mail.spam.example")[0] == 550  # subdomain of a denied domain
        s.rset()
        s.mail("x@ok.example")
        assert s.rcpt("nobody@localhost")[0] == 550
        assert s.rcpt("bob@localhost")[0] == 250
    # Allow the loopback network: the session is allowed and skips every deny rule.
    rules.write_text('[allow]\nnetworks = ["127.0.0.0/8"]\n[deny]\ndomains = ["spam.example"]\n')

    def allowed() -> bool:
        with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
            s.ehlo("client.test")
            return s.mail("x@spam.example")[0] == 250

    deadline = time.monotonic() + 5
    while not allowed():
        assert time.monotonic() < deadline, "rules were not reloaded"
        time.sleep(0.1)
    # A broken rules file keeps the previous rules.
    rules.write_text("[deny\n")
    time.sleep(0.6)
    assert allowed()
    assert "not reloaded, keeping the previous rules" in srv.log()


def test_plugins_directory_and_enabled_keep_their_meaning(elemta_server, tmp_path: Path) -> None:
    """[plugins] directory/<name>/catalog.toml is found when enabled names it."""
    pdir = tmp_path / "plugins"
    shutil.copytree(EXAMPLES / "allowdeny", pdir / "allowdeny")
    (pdir / "allowdeny").chmod(0o755)
    srv: ServerProcess = elemta_server(plugins={"directory": str(pdir), "enabled": ["allowdeny"]})
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
        s.ehlo("client.test")
        assert s.mail("bulk-x@example.org")[0] == 550
