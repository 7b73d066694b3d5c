"""A message acknowledged with 250 survives SIGKILL; SIGTERM drains; SIGHUP reloads."""

from __future__ import annotations

import json
import signal
import smtplib
import time
from pathlib import Path

from tests.support.load import AckedLoad
from tests.support.server import ServerProcess, with_test_plugins_env

MSG = b"Subject: durable\r\nFrom: a@example.org\r\n\r\nbody\r\n"


def test_sigkill_right_after_250_loses_nothing(elemta_server) -> None:
    # Relay to a domain with no transport: the message stays in the spool, so only the spool
    # (not a finished Maildir delivery) can prove it survived.
    srv: ServerProcess = elemta_server(server={"relay_networks": ["127.0.0.0/8"]},
                                       delivery={"transports": {  # nothing listens: deferred
                                           "remote.example": "smtp:[127.0.0.1]:9"}})
    ids = []
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
        s.ehlo("c.test")
        for i in range(5):
            assert s.mail("a@example.org")[0] == 250
            assert s.rcpt(f"u{i}@remote.example")[0] == 250
            code, resp = s.data(MSG)
            assert code == 250
            ids.append(resp.decode().rsplit(" ", 1)[1])
        srv.kill()  # SIGKILL straight after the last 250
    spooled = {p.name for st in ("active", "deferred") for p in (srv.state_dir / "spool" / st).iterdir()}
    assert set(ids) <= spooled
    srv.start()
    status = json.loads(srv.cli("status").stdout)
    assert status["queue"]["active"] + status["queue"]["deferred"] == 5


def test_sigkill_under_load_then_restart_delivers_every_acknowledged_message(elemta_server) -> None:
    srv: ServerProcess = elemta_server()
    with AckedLoad(srv) as load:
        time.sleep(1.5)
        srv.kill()
    acked = load.acked
    assert len(acked) > 20
    srv.start()
    missing = load.missing(20)
    assert missing == [], f"{len(missing)} of {len(acked)} acknowledged messages lost"


def test_sigterm_drains_an_open_session(elemta_server) -> None:
    srv: ServerProcess = elemta_server(server={"shutdown_grace": 5.0})
    s = smtplib.SMTP("127.0.0.1", srv.port, timeout=10)
    s.ehlo("c.test")
    s.mail("a@example.org")
    s.rcpt("bob@localhost")
    srv.signal(signal.SIGTERM)
    time.sleep(0.3)
    code, _ = s.data(MSG)  # the session in progress may finish its message
    assert code == 250
    s.quit()
    assert srv.proc is not None and srv.proc.wait(10) == 0
    assert len(srv.maildir_messages("bob@localhost")) == 1
    assert "stopped" in srv.log()


def test_sighup_reloads_plugin_config_and_refuses_a_bad_one(elemta_server, tmp_path: Path) -> None:
    srv: ServerProcess = elemta_server(env=with_test_plugins_env(),
                                       plugins={"enabled": ["t_first"]},
                                       testplugins={"behaviors": {}})

    def rcpt() -> int:
        with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
            s.ehlo("c.test")
            s.mail("a@example.org")
            return s.rcpt("bob@localhost")[0]

    assert rcpt() == 250
    srv.config["testplugins"]["behaviors"] = {"t_first.rcpt_to": "reject:550:5.7.1:reloaded"}
    srv.write_config()
    srv.signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "configuration reloaded" not in srv.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rcpt() == 550
    # an invalid config is refused and the running one kept
    srv.config_path.write_text(srv.config_path.read_text() + "\n[server]\nbogus = 1\n")
    srv.signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "reload refused" not in srv.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "reload refused" in srv.log()
    assert rcpt() == 550
