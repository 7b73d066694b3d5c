"""Disk full and read-only spool answer 452/451, never 250; repeated SIGKILL loses nothing."""

from __future__ import annotations

import smtplib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.load import AckedLoad
from tests.support.server import ServerProcess


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)],
                       check=False, capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs for the disk-full test: {r.stderr}", pytrace=False)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def count_stored(srv: ServerProcess) -> int:
    spool = sum(1 for st in ("active", "deferred") for _ in (srv.state_dir / "spool" / st).iterdir())
    return spool + len(srv.maildir_messages("bob@localhost"))


def test_disk_full_gives_452_and_every_250_is_stored(elemta_server, tiny_fs: Path) -> None:
    srv: ServerProcess = elemta_server(start=False)
    srv.config["server"]["state_dir"] = str(tiny_fs / "state")
    srv.start()
    body = b"Subject: fill\r\n\r\n" + (b"x" * 998 + b"\r\n") * 100  # ~100 KB
    acked, refused = 0, None
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
        for _ in range(60):
            try:
                s.sendmail("a@example.org", ["bob@localhost"], body)
                acked += 1
            except smtplib.SMTPDataError as e:
                refused = e
                break
    assert refused is not None, "the disk never filled"
    assert refused.smtp_code in (452, 451)
    assert refused.smtp_code != 250
    time.sleep(1)
    assert count_stored(srv) == acked


def test_read_only_spool_gives_4xx(elemta_server, tiny_fs: Path) -> None:
    srv: ServerProcess = elemta_server(start=False)
    srv.config["server"]["state_dir"] = str(tiny_fs / "state")
    srv.start()
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_fs)], check=True)
    try:
        with (smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s,
              pytest.raises(smtplib.SMTPDataError) as e):
            s.sendmail("a@example.org", ["bob@localhost"], b"Subject: ro\r\n\r\nx\r\n")
        assert e.value.smtp_code == 451 and e.value.smtp_error.startswith(b"4.3.0")
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(tiny_fs)], check=True)


def test_repeated_sigkill_under_load_loses_no_acknowledged_message(elemta_server) -> None:
    srv: ServerProcess = elemta_server()
    with AckedLoad(srv, prefix="k") as load:
        for _ in range(3):
            time.sleep(1.0)
            srv.kill()
            time.sleep(0.2)
            srv.start()
        time.sleep(1.0)
    counted = load.acked
    assert len(counted) > 30
    missing = load.missing(30)
    assert missing == [], f"lost {len(missing)} of {len(counted)} acknowledged messages"
