"""Set-up for the plugins-in-any-language tests: the Go plugin is built and the Node plugin's
libraries installed once per test session (both cached across sessions: Go's build cache, and
``npm ci`` only when package-lock.json changed), under a lock so parallel runs do not race.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from elemta_core.admin.client import call
from tests.support.server import REPO, ServerProcess
from tests.support.services import require_binary

GO_DIR = REPO / "external-plugins" / "go_filter"
NODE_DIR = REPO / "external-plugins" / "node_filter"
GO_TOOLS = ("go", "protoc", "protoc-gen-go")
BUILD_TIMEOUT_S = 300


@contextlib.contextmanager
def build_lock(what: Path) -> Iterator[None]:
    """One build of ``what`` at a time on this machine (other test runs share the tree)."""
    key = hashlib.sha256(str(what).encode()).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"elemta-build-{key}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def run_step(argv: list[str], cwd: Path, what: str, timeout: float = BUILD_TIMEOUT_S,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run one build step; its output is the failure message when it fails."""
    r = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, **(env or {})}, check=False)
    if r.returncode != 0:
        pytest.fail(f"{what} failed (exit {r.returncode}):\n{r.stdout[-3000:]}\n"
                    f"{r.stderr[-3000:]}", pytrace=False)
    return r


def npm_ci(directory: Path) -> None:
    """``npm ci`` unless node_modules already holds exactly what package-lock.json says."""
    require_binary("npm")
    installed = directory / "node_modules" / ".package-lock.json"
    lock = directory / "package-lock.json"
    with build_lock(directory):
        if installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime:
            return
        run_step(["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"], directory,
                 f"npm ci in {directory}")


@pytest.fixture(scope="session")
def go_filter_catalog() -> Path:
    """external-plugins/go_filter built; its catalog.toml (written by build.sh) pins it."""
    for tool in GO_TOOLS:
        require_binary(tool)
    with build_lock(GO_DIR):
        run_step(["bash", str(GO_DIR / "build.sh")], GO_DIR, "go_filter/build.sh")
    return GO_DIR / "catalog.toml"


@pytest.fixture(scope="session")
def node_filter_catalog() -> Path:
    require_binary("node")
    npm_ci(NODE_DIR)
    return NODE_DIR / "catalog.toml"


# -- talking to the running server -------------------------------------------------------


def plugin_row(srv: ServerProcess, name: str) -> dict[str, Any]:
    """The plugin's row of ``elemta plugin list`` (pid, state, restarts …), from the daemon."""
    rows = call(srv.state_dir / "admin.sock", "plugin.list")["plugins"]
    for row in rows:
        if row["name"] == name:
            return dict(row)
    raise AssertionError(f"plugin {name} is not listed: {json.dumps(rows)[:2000]}")


def wait_for(srv: ServerProcess, name: str, timeout: float = 15.0, **want: Any) -> dict[str, Any]:
    """Poll the plugin's row until every ``key=value`` of ``want`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        row = plugin_row(srv, name)
        if all(row.get(k) == v for k, v in want.items()):
            return row
        if time.monotonic() > deadline:
            raise AssertionError(f"plugin {name} never reached {want}: {row}\n{srv.log()[-3000:]}")
        time.sleep(0.05)
