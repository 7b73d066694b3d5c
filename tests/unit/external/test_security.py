"""Checksum pinning, permissions, environment allowlist, private dirs, limits."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from elemta_core.external import constants as C
from elemta_core.external.catalog import Limits, parse_entry
from elemta_core.external.errors import RefusedError
from elemta_core.external.security import (
    environment,
    preexec,
    private_dir,
    sweep_socket_dirs,
    verify,
)


def pinned(tmp: Path, body: bytes = b"print(1)\n", digest: str | None = None):  # type: ignore[no-untyped-def]
    d = tmp / "p"
    d.mkdir(mode=0o700, exist_ok=True)
    f = d / "plugin.py"
    f.write_bytes(body)
    f.chmod(0o600)
    want = digest or hashlib.sha256(body).hexdigest()
    return parse_entry({"name": "p", "command": ["{python}", "plugin.py"],
                        "sha256": {"plugin.py": want}}, "x", d, ""), f


def test_verify_accepts_pinned_unchanged_files(tmp_path: Path) -> None:
    entry, _ = pinned(tmp_path)
    verify(entry)


def test_a_changed_file_is_refused_naming_both_digests(tmp_path: Path) -> None:
    entry, f = pinned(tmp_path)
    f.write_bytes(b"print(2)\n")
    with pytest.raises(RefusedError) as exc:
        verify(entry)
    assert "checksum mismatch for" in str(exc.value)
    assert hashlib.sha256(b"print(2)\n").hexdigest() in str(exc.value)


def test_missing_and_writable_files_are_refused(tmp_path: Path) -> None:
    entry, f = pinned(tmp_path)
    f.chmod(0o666)
    with pytest.raises(RefusedError, match="group- or world-writable; run chmod go-w"):
        verify(entry)
    f.chmod(0o600)
    f.parent.chmod(0o777)
    with pytest.raises(RefusedError, match="world-writable"):
        verify(entry)
    f.parent.chmod(0o700)
    f.unlink()
    with pytest.raises(RefusedError, match="does not exist"):
        verify(entry)


def test_environment_is_an_allowlist_plus_the_handshake(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("PATH", "/usr/bin")
    entry, _ = pinned(tmp_path)
    entry.env = {"GREETING": "hi"}
    env = environment(entry, tmp_path / "sock", tmp_path / "state")
    assert "AWS_SECRET_ACCESS_KEY" not in env and env["PATH"] == "/usr/bin"
    assert env["GREETING"] == "hi"
    assert env[C.MAGIC_COOKIE_KEY] == C.MAGIC_COOKIE_VALUE
    assert env[C.ENV_PROTOCOL_VERSIONS] == "1"
    assert env[C.ENV_SOCKET_DIR] == env["TMPDIR"] == str(tmp_path / "sock")


def test_socket_dirs_of_dead_servers_are_swept() -> None:
    import subprocess
    import tempfile

    p = subprocess.Popen(["true"])  # a pid that is gone once reaped
    p.wait()
    stale = Path(tempfile.mkdtemp(prefix=f"elemta-{p.pid}-x-"))
    mine = private_dir("x")
    try:
        sweep_socket_dirs()
        assert not stale.exists() and mine.exists()
    finally:
        mine.rmdir()


def test_private_dir_is_0700_and_short() -> None:
    d = private_dir("test")
    try:
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
        assert len(str(d)) < 60  # room for the socket name within 108 bytes
    finally:
        d.rmdir()


def test_preexec_applies_limits_in_a_child() -> None:
    import resource

    fn = preexec(Limits(memory_mb=512, max_files=64, cpu_seconds=30), os.getpid())
    pid = os.fork()
    if pid == 0:  # child: apply, then report through the exit code
        try:
            fn()
            ok = (resource.getrlimit(resource.RLIMIT_NOFILE)[0] == 64
                  and resource.getrlimit(resource.RLIMIT_AS)[0] == 512 * 1024 * 1024
                  and resource.getrlimit(resource.RLIMIT_CPU)[0] == 30
                  and resource.getrlimit(resource.RLIMIT_CORE)[0] == 0)
        except BaseException:  # noqa: BLE001 - the child must always exit
            ok = False
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
