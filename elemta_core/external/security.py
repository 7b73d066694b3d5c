"""What stands between a catalog entry and a running child: pinned checksums (re-checked at
every launch), file permissions, an environment allowlist, a private socket directory and
resource limits, and PR_SET_PDEATHSIG so the child dies with the server.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import resource
import shutil
import signal
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from elemta_core.external import constants as C
from elemta_core.external.catalog import PYTHON_TOKEN, CatalogEntry, Limits
from elemta_core.external.errors import RefusedError

#: Variables of the server's environment a plugin may see; everything else is scrubbed.
ENV_ALLOWLIST = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ")
PR_SET_PDEATHSIG = 1
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _writable_by_others(path: Path) -> bool:
    st = path.stat()
    if stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX:
        return False  # a sticky dir (/tmp): others cannot replace our file in it
    return bool(st.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def verify(entry: CatalogEntry) -> None:
    """Refuse a launch unless every file that runs is pinned, unchanged and not writable by
    others. Blocking (reads files): call it in an executor."""
    pinned = entry.pinned()
    for i, arg in enumerate(entry.command):
        if arg == PYTHON_TOKEN or (i > 0 and arg.startswith("-")):
            continue
        p = entry.resolve(arg)
        inside = not Path(arg).is_absolute() or p.is_relative_to(entry.base_dir)
        if inside and p.is_file() and p not in pinned:
            raise RefusedError(f"{p} is run but not pinned: add it to sha256 "
                               f"(sha256 = {sha256_file(p)})")
    for path, want in pinned.items():
        try:
            if not path.exists():
                raise FileNotFoundError(path)
            if not path.is_file():
                raise RefusedError(f"pinned file {path} is not a regular file")
            for p in (path, path.parent):
                if _writable_by_others(p):
                    raise RefusedError(f"{p} is group- or world-writable; run chmod go-w {p}")
            got = sha256_file(path)
        except FileNotFoundError:
            raise RefusedError(f"pinned file {path} does not exist") from None
        except OSError as e:
            raise RefusedError(f"cannot read pinned file {path}: {e.strerror}") from None
        if got != want:
            raise RefusedError(f"checksum mismatch for {path}: pinned {want}, file has {got}; "
                               "if the change is yours, update sha256 (make checksums)")


def environment(entry: CatalogEntry, socket_dir: Path, state_dir: Path) -> dict[str, str]:
    """The child's whole environment: the allowlist, the entry's ``env``, the handshake."""
    env = {k: os.environ[k] for k in ENV_ALLOWLIST if k in os.environ}
    env.update(entry.env)
    env.update({
        C.MAGIC_COOKIE_KEY: C.MAGIC_COOKIE_VALUE,
        C.ENV_PROTOCOL_VERSIONS: str(C.APP_PROTOCOL_VERSION),
        C.ENV_SOCKET_DIR: str(socket_dir),
        "TMPDIR": str(socket_dir),  # go-plugin 1.0.1 makes its socket in os.TempDir()
        C.ENV_MIN_PORT: "0",
        C.ENV_MAX_PORT: "0",
        C.ENV_PLUGIN_NAME: entry.name,
        C.ENV_STATE_DIR: str(state_dir),
        "PYTHONUNBUFFERED": "1",
    })
    return env


SOCKET_DIR_PREFIX = "elemta-"


def private_dir(name: str, user: str = "") -> Path:
    """A fresh 0700 directory for one launch's socket (short, under the system temp dir:
    socket paths are limited to 108 bytes), owned by ``user`` when the plugin runs as one.
    Its name carries our pid so :func:`sweep_socket_dirs` can tell a dead server's."""
    d = Path(tempfile.mkdtemp(prefix=f"{SOCKET_DIR_PREFIX}{os.getpid()}-{name[:16]}-"))
    if user:
        shutil.chown(d, user)
    return d


def sweep_socket_dirs() -> int:
    """Remove socket dirs left by servers that were killed (their pid is gone); ours only."""
    removed = 0
    uid = os.getuid()
    for d in Path(tempfile.gettempdir()).glob(f"{SOCKET_DIR_PREFIX}*-*-*"):
        pid = d.name[len(SOCKET_DIR_PREFIX):].partition("-")[0]
        try:
            if not pid.isdigit() or d.stat().st_uid != uid or not d.is_dir():
                continue
            os.kill(int(pid), 0)
            continue  # that server still runs
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
            removed += 1
        except OSError:
            continue
    return removed


def _prctl() -> Callable[[int, int], int] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.prctl
    except (OSError, AttributeError):
        return None
    return fn


_PRCTL = _prctl()


def preexec(limits: Limits, parent: int) -> Callable[[], None]:
    """Runs in the child between fork and exec: die with the parent, apply the limits.

    Kept allocation-light: it runs in a forked copy of a threaded process.
    """
    rl: list[tuple[int, int]] = [(resource.RLIMIT_CORE, 0)]
    if limits.memory_mb:
        rl.append((resource.RLIMIT_AS, limits.memory_mb * 1024 * 1024))
    if limits.max_files:
        rl.append((resource.RLIMIT_NOFILE, limits.max_files))
    if limits.cpu_seconds:
        rl.append((resource.RLIMIT_CPU, limits.cpu_seconds))
    prctl = _PRCTL

    def child() -> None:
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the server died before prctl took effect
            os._exit(1)
        for which, value in rl:
            _soft, hard = resource.getrlimit(which)
            if hard != resource.RLIM_INFINITY and value > hard:
                value = hard
            resource.setrlimit(which, (value, value if hard == resource.RLIM_INFINITY
                                       else min(value, hard)))

    return child
