"""Helpers for external plugin tests: copy a plugin into a private dir and pin it."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
REPO = HERE.parents[2]
EXAMPLES = REPO / "external-plugins"


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def pinned_entry(tmp: Path, script: Path, name: str, args: tuple[str, ...] = (),
                 **kw: Any) -> dict[str, Any]:
    """A [[plugins.external]] table for a private copy of ``script`` (0700 dir, pinned)."""
    d = tmp / f"plugin-{name}"
    d.mkdir(mode=0o700, exist_ok=True)
    dst = d / script.name
    shutil.copy(script, dst)
    dst.chmod(0o600)
    for extra in kw.pop("files", ()):
        shutil.copy(extra, d / Path(extra).name)
    entry = {"name": name, "command": ["{python}", str(dst), *args],
             "sha256": {str(dst): sha256(dst)}}
    entry.update(kw)
    return entry


@pytest.fixture
def plugin_entry(tmp_path: Path) -> Callable[..., dict[str, Any]]:
    def make(script: str | Path, name: str, *args: str, **kw: Any) -> dict[str, Any]:
        p = Path(script)
        if not p.is_absolute():
            p = HERE / "plugins" / p
        return pinned_entry(tmp_path, p, name, args, **kw)

    return make


def pids_alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        # a zombie is dead for our purpose
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(")")[-1].split()[0] == "Z":
                    continue
        except OSError:
            continue
        alive.append(pid)
    return alive


def wait_until(cond: Callable[[], Any], timeout: float, step: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step)


def kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
