"""The plugin security manager's gaps closed: ownership up to /, the program that runs
(interpreter plus script), and the argv it returns."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

import pytest

from elemta_core.external.catalog import parse_entry
from elemta_core.external.errors import RefusedError
from elemta_core.external.security import check_tree, verify

NOBODY = 65534


def entry_for(d: Path, command: list[str], pins: dict[str, bytes], **kw: object):  # type: ignore[no-untyped-def]
    sha = {k: hashlib.sha256(v).hexdigest() for k, v in pins.items()}
    return parse_entry({"name": "p", "command": command, "sha256": sha, **kw}, "x", d, "")


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    d = tmp_path / "p"
    d.mkdir(mode=0o755)
    (d / "plugin.py").write_bytes(b"print(1)\n")
    (d / "plugin.py").chmod(0o644)
    return d


def test_python_token_runs_the_servers_interpreter(plugin_dir: Path) -> None:
    e = entry_for(plugin_dir, ["{python}", "plugin.py"], {"plugin.py": b"print(1)\n"})
    argv = verify(e)
    assert argv == [sys.executable, str(plugin_dir / "plugin.py")]


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_a_file_owned_by_another_user_is_refused(plugin_dir: Path) -> None:
    e = entry_for(plugin_dir, ["{python}", "plugin.py"], {"plugin.py": b"print(1)\n"})
    os.chown(plugin_dir / "plugin.py", NOBODY, -1)
    with pytest.raises(RefusedError, match=r"plugin.py is owned by uid 65534, not by root"):
        verify(e)
    os.chown(plugin_dir / "plugin.py", 0, -1)
    os.chown(plugin_dir, NOBODY, -1)  # whoever owns the dir can swap the file
    with pytest.raises(RefusedError, match=rf"{plugin_dir} is owned by uid 65534"):
        verify(e)


def test_a_writable_dir_anywhere_above_is_refused(tmp_path: Path) -> None:
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True, mode=0o755)
    f = deep / "plugin.py"
    f.write_bytes(b"x")
    check_tree(f)
    (tmp_path / "a").chmod(0o775)
    with pytest.raises(RefusedError, match=rf"{tmp_path / 'a'} is group- or world-writable"):
        check_tree(f)
    (tmp_path / "a").chmod(0o755)
    os.chmod(tmp_path / "a", 0o1777)  # sticky, like /tmp: others cannot replace entries
    check_tree(f)


def test_an_unpinned_program_from_path_outside_system_dirs_is_refused(
        plugin_dir: Path, tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir(mode=0o755)
    prog = bindir / "myinterp"
    prog.write_bytes(b"#!/bin/sh\n")
    prog.chmod(0o755)
    e = entry_for(plugin_dir, ["myinterp", "plugin.py"], {"plugin.py": b"print(1)\n"},
                  env={"PATH": str(bindir)})
    with pytest.raises(RefusedError, match=r"myinterp \(command\[0\]\) is run but not pinned "
                                           r"and not in a trusted system directory"):
        verify(e)
    pinned = entry_for(plugin_dir, ["myinterp", "plugin.py"],
                       {"plugin.py": b"print(1)\n", str(prog): b"#!/bin/sh\n"},
                       env={"PATH": str(bindir)})
    assert verify(pinned)[0] == str(prog)  # resolved once: exec cannot pick another one
    prog.write_bytes(b"#!/bin/sh\nevil\n")
    with pytest.raises(RefusedError, match="checksum mismatch for"):
        verify(pinned)


def test_a_program_missing_from_path_is_refused(plugin_dir: Path) -> None:
    e = entry_for(plugin_dir, ["no-such-interp", "plugin.py"], {"plugin.py": b"print(1)\n"},
                  env={"PATH": "/nonexistent"})
    with pytest.raises(RefusedError, match="'no-such-interp' .* is not found on PATH"):
        verify(e)


@pytest.mark.skipif(not shutil.which("sh", path="/usr/bin:/bin"), reason="no /bin/sh")
def test_a_system_interpreter_is_trusted_and_resolved(plugin_dir: Path) -> None:
    e = entry_for(plugin_dir, ["sh", "plugin.py"], {"plugin.py": b"print(1)\n"},
                  env={"PATH": "/usr/bin:/bin"})
    argv = verify(e)
    assert Path(argv[0]).parent in (Path("/usr/bin"), Path("/bin"))
    assert argv[1] == str(plugin_dir / "plugin.py")


def test_a_relative_program_path_must_be_pinned(plugin_dir: Path) -> None:
    (plugin_dir / "run.sh").write_bytes(b"#!/bin/sh\n")
    (plugin_dir / "run.sh").chmod(0o755)
    e = entry_for(plugin_dir, ["./run.sh"], {"plugin.py": b"print(1)\n"})
    with pytest.raises(RefusedError, match=r"run.sh \(command\[0\]\) is run but not pinned"):
        verify(e)
