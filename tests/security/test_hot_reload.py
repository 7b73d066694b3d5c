"""Hot reload while mail flows: a real ``elemta serve`` with ``[plugins] hot_reload = true``,
an external plugin changed on disk (refused until re-pinned), then re-pinned with
``elemta plugin pin``; a client sends mail the whole time. Every acknowledged message is
delivered, every answer is the old plugin's, the new plugin's or the failure policy."""

from __future__ import annotations

import json
import os
import shutil
import signal
import smtplib
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.integration.external.conftest import wait_until
from tests.support.server import ELEMTA, REPO, ServerProcess, base_config

PLUGIN = Path(__file__).parent / "plugins" / "versioned.py"


def catalog(d: Path) -> Path:
    script = d / "versioned.py"
    shutil.copy(PLUGIN, script)
    script.chmod(0o644)
    cat = d / "catalog.toml"
    cat.write_text('[[plugins.external]]\nname = "versioned"\ncommand = ["{python}", '
                   '"versioned.py"]\nsha256 = { "versioned.py" = "' + "0" * 64 + '" }\n'
                   'hooks_timeout_ms = 5000\nshutdown_grace_ms = 3000\n')
    return cat


def pin(cat: Path) -> None:
    """``elemta plugin pin``, as a developer runs it after changing the plugin."""
    subprocess.run([*ELEMTA, "plugin", "pin", str(cat)], check=True, timeout=60,
                   capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO)})


def probe(port: int) -> str:
    """The plugin's current answer to RCPT probe@localhost."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.ehlo("probe.test")
        s.mail("a@example.org")
        code, text = s.rcpt("probe@localhost")
        return f"{code} {text.decode()}"


class Sender(threading.Thread):
    """Sends numbered messages to bob@localhost until stopped; records every outcome."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.stop = threading.Event()
        self.acked: list[int] = []
        self.outcomes: Counter[str] = Counter()
        self.wrong: list[str] = []

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            msg = (f"Subject: m{n}\r\nFrom: a@example.org\r\nMessage-ID: <m{n}@test>\r\n\r\n"
                   f"body {n}\r\n").encode()
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=15) as s:
                    s.sendmail("a@example.org", ["bob@localhost"], msg)
                self.acked.append(n)
                self.outcomes["250"] += 1
            except smtplib.SMTPDataError as e:
                key = f"{e.smtp_code} {e.smtp_error.decode()}"
                self.outcomes[key] += 1
                if e.smtp_code != 451:  # the failure policy (tempfail) is the only other answer
                    self.wrong.append(key)
            except (smtplib.SMTPException, OSError) as e:
                self.wrong.append(f"{type(e).__name__}: {e}")
            time.sleep(0.005)


def plugin_row(srv: ServerProcess) -> dict[str, Any]:
    rows = json.loads(srv.cli("plugin", "list", "--json").stdout)["plugins"]
    return next(r for r in rows if r["name"] == "versioned")


def test_hot_reload_of_an_external_plugin_while_mail_flows(tmp_path: Path) -> None:
    pdir = tmp_path / "versioned"
    pdir.mkdir(mode=0o755)
    cat = catalog(pdir)
    srv = ServerProcess(base_config(tmp_path, delivery={"local_domains": ["localhost"]},
                                    plugins={"hot_reload": True, "include": [str(cat)]}),
                        tmp_path)
    pin(cat)
    srv.start()
    sender = Sender(srv.port)
    try:
        assert probe(srv.port) == "550 5.7.1 version 1"
        old_pid = plugin_row(srv)["pid"]
        sender.start()
        assert wait_until(lambda: len(sender.acked) >= 20, 30), sender.outcomes

        # 1. An unpinned edit: the reload is refused, version 1 keeps running and answering.
        script = pdir / "versioned.py"
        script.write_text(script.read_text().replace('VERSION = "1"', 'VERSION = "2"'))
        assert wait_until(lambda: "hot reload refused" in srv.log(), 15), srv.log()[-3000:]
        row = plugin_row(srv)
        assert row["state"] == "ready" and row["pid"] == old_pid
        assert "reload refused: checksum mismatch for" in row["last_error"]
        assert probe(srv.port) == "550 5.7.1 version 1"
        n_refused = len(sender.acked)
        assert wait_until(lambda: len(sender.acked) >= n_refused + 10, 30), sender.outcomes

        # 2. The developer pins the change: the plugin is restarted with version 2.
        pin(cat)
        assert wait_until(lambda: probe(srv.port) == "550 5.7.1 version 2", 30), \
            srv.log()[-3000:]
        row = plugin_row(srv)
        assert row["state"] == "ready" and row["pid"] != old_pid and row["last_error"] == ""
        n_reloaded = len(sender.acked)
        assert wait_until(lambda: len(sender.acked) >= n_reloaded + 20, 30), sender.outcomes

        # 3. A changed core setting is applied; an invalid config is refused, state kept.
        srv.config["server"]["max_recipients"] = 1
        srv.write_config()

        def one_rcpt_only() -> bool:
            with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
                s.ehlo("probe.test")
                s.mail("a@example.org")
                s.rcpt("bob@localhost")
                return s.rcpt("carol@localhost")[0] == 452

        assert wait_until(one_rcpt_only, 15, step=0.2), srv.log()[-3000:]
        srv.config_path.write_text(srv.config_path.read_text() + "\n[[[broken toml\n")
        assert wait_until(lambda: srv.log().count("hot reload refused") >= 2, 15)
        assert probe(srv.port) == "550 5.7.1 version 2"
        assert one_rcpt_only()
    finally:
        sender.stop.set()
        sender.join(30)
        rc = srv.stop()
    assert rc == 0, srv.log()[-3000:]
    assert not sender.wrong, (sender.wrong[:5], sender.outcomes)
    # Every acknowledged message was delivered exactly once, stamped by version 1 or 2.
    msgs = srv.wait_delivered("bob@localhost", len(sender.acked), 20)
    versions: Counter[str] = Counter()
    seen: list[int] = []
    for m in msgs:
        data = m.read_bytes()
        head = data.split(b"\r\n\r\n", 1)[0]
        stamps = [ln for ln in head.split(b"\r\n") if ln.startswith(b"X-Plugin-Version:")]
        assert len(stamps) == 1, head
        versions[stamps[0].split(b":", 1)[1].strip().decode()] += 1
        seen.append(int(data.rsplit(b"body ", 1)[1].strip()))
    assert sorted(seen) == sorted(sender.acked), "an acknowledged message is missing"
    assert set(versions) == {"1", "2"}, versions
    assert versions["2"] >= 20 and versions["1"] >= 30, versions
    print(f"acknowledged {len(sender.acked)}, outcomes {dict(sender.outcomes)}, "
          f"versions {dict(versions)}")


def test_sighup_restarts_only_a_changed_plugin_and_refuses_an_unpinned_one(
        tmp_path: Path) -> None:
    pdir = tmp_path / "versioned"
    pdir.mkdir(mode=0o755)
    cat = catalog(pdir)
    pin(cat)
    srv = ServerProcess(base_config(tmp_path, plugins={"include": [str(cat)]}), tmp_path)
    srv.start()
    try:
        pid = plugin_row(srv)["pid"]

        def reloaded(n: int) -> bool:
            return srv.log().count("configuration reloaded") + \
                srv.log().count("reload refused") >= n

        srv.signal(signal.SIGHUP)  # nothing changed: the plugin is kept, not restarted
        assert wait_until(lambda: reloaded(1), 15), srv.log()[-3000:]
        assert plugin_row(srv)["pid"] == pid
        script = pdir / "versioned.py"
        script.write_text(script.read_text().replace('VERSION = "1"', 'VERSION = "2"'))
        srv.signal(signal.SIGHUP)  # changed, not pinned: refused, version 1 runs on
        assert wait_until(lambda: reloaded(2), 15), srv.log()[-3000:]
        assert "reload refused" in srv.log()
        row = plugin_row(srv)
        assert row["pid"] == pid and row["state"] == "ready", row
        assert probe(srv.port) == "550 5.7.1 version 1"
        pin(cat)
        srv.signal(signal.SIGHUP)
        assert wait_until(lambda: reloaded(3), 15), srv.log()[-3000:]
        assert probe(srv.port) == "550 5.7.1 version 2"
        assert plugin_row(srv)["pid"] != pid
    finally:
        assert srv.stop() == 0, srv.log()[-3000:]
