"""What stands between a catalog entry and a running child: pinned checksums (re-checked at
every launch), file permissions, an environment allowlist, a private socket directory and
resource limits, and PR_SET_PDEATHSIG so the child dies with the server.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import pwd
import resource
import shutil
import signal
import stat
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from elemta_core.external import constants as C
from elemta_core.external.catalog import PYTHON_TOKEN, CatalogEntry, Limits
from elemta_core.external.errors import RefusedError
from elemta_core.external.mtls import ENV_CLIENT_CERT

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


#: Where a program named in ``command`` without a path (``python3``, ``node``) may be found
#: and run without a pin: system directories only root can write. Anything else on PATH
#: (a pyenv shim, ~/.local/bin, a venv) must be pinned by its resolved absolute path.
TRUSTED_PROGRAM_DIRS = (Path("/usr/bin"), Path("/bin"), Path("/usr/local/bin"),
                        Path("/usr/sbin"), Path("/sbin"))


def _writable_by_others(path: Path) -> bool:
    st = path.stat()
    if stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX:
        return False  # a sticky dir (/tmp): others cannot replace our file in it
    return bool(st.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def check_tree(path: Path, owners: frozenset[int] | None = None) -> None:
    """Refuse ``path`` unless it and every directory above it, up to ``/``, is owned by root
    or the server's user and is not group- or world-writable (sticky dirs excepted): whoever
    could write any of them could swap the file between the check and the exec."""
    owners = owners if owners is not None else frozenset({0, os.geteuid()})
    p = path
    while True:
        try:
            st = p.stat()
        except OSError as e:
            raise RefusedError(f"cannot stat {p}: {e.strerror}") from None
        if st.st_uid not in owners:
            raise RefusedError(f"{p} is owned by uid {st.st_uid}, not by root or the server's "
                               f"user (uid {os.geteuid()}); run chown root {p}")
        if _writable_by_others(p):
            raise RefusedError(f"{p} is group- or world-writable; run chmod go-w {p}")
        if p.parent == p:
            return
        p = p.parent


def resolve_program(entry: CatalogEntry) -> Path | None:
    """The file ``command[0]`` runs: ``{python}`` is the server's interpreter, a bare name is
    looked up on the child's PATH (as exec would), a path is taken as written."""
    prog = entry.command[0]
    if prog == PYTHON_TOKEN:
        return Path(sys.executable)
    if "/" in prog:
        return entry.resolve(prog)
    path = entry.env.get("PATH", os.environ.get("PATH", os.defpath))
    found = shutil.which(prog, path=path)
    if found is None:
        raise RefusedError(f"{prog!r} (command[0]) is not found on PATH {path}")
    return Path(found).absolute()


def verify(entry: CatalogEntry) -> list[str]:
    """Refuse a launch unless every file that runs is pinned (or a trusted interpreter),
    unchanged, owned by root or the server's user, and not writable by others up to ``/``.
    Returns the argv to run, with ``command[0]`` resolved to the file that was checked.
    Blocking (reads files): call it in an executor."""
    pinned = entry.pinned()
    for i, arg in enumerate(entry.command):
        if i == 0 or (i > 0 and arg.startswith("-")):
            continue
        p = entry.resolve(arg)
        inside = not Path(arg).is_absolute() or p.is_relative_to(entry.base_dir)
        if inside and p.is_file() and p not in pinned:
            raise RefusedError(f"{p} is run but not pinned: add it to sha256 "
                               f"(sha256 = {sha256_file(p)})")
    argv = entry.argv()
    prog = resolve_program(entry)
    if prog is not None:
        argv[0] = str(prog)
        _check_program(entry, prog, pinned)
    for path, want in pinned.items():
        try:
            if not path.exists():
                raise FileNotFoundError(path)
            if not path.is_file():
                raise RefusedError(f"pinned file {path} is not a regular file")
            check_tree(path)
            got = sha256_file(path)
        except FileNotFoundError:
            raise RefusedError(f"pinned file {path} does not exist") from None
        except OSError as e:
            raise RefusedError(f"cannot read pinned file {path}: {e.strerror}") from None
        if got != want:
            raise RefusedError(f"checksum mismatch for {path}: pinned {want}, file has {got}; "
                               "if the change is yours, update sha256 (make checksums)")
    return argv


def _check_program(entry: CatalogEntry, prog: Path, pinned: dict[Path, str]) -> None:
    """The program itself: pinned (checked with the other pins), or a trusted interpreter:
    ``{python}`` (the server's own) or a bare name found in :data:`TRUSTED_PROGRAM_DIRS`."""
    real = Path(os.path.realpath(prog))
    if prog in pinned or real in pinned:
        return
    if entry.command[0] == PYTHON_TOKEN or prog.parent in TRUSTED_PROGRAM_DIRS:
        check_tree(prog)
        check_tree(real)
        return
    digest = sha256_file(real) if real.is_file() else "<file missing>"
    raise RefusedError(f"{prog} (command[0]) is run but not pinned and not in a trusted "
                       f"system directory ({', '.join(map(str, TRUSTED_PROGRAM_DIRS))}): "
                       f'pin it ("{real}" = "{digest}") or use {{python}}')


def environment(entry: CatalogEntry, socket_dir: Path, state_dir: Path,
                client_cert: bytes | None = None) -> dict[str, str]:
    """The child's whole environment: the allowlist, the entry's ``env``, the handshake
    (with the host's AutoMTLS certificate when ``client_cert`` is given)."""
    env = {k: os.environ[k] for k in ENV_ALLOWLIST if k in os.environ}
    env.update(entry.env)
    env.pop(ENV_CLIENT_CERT, None)  # never a certificate from the catalog or our environment
    if client_cert is not None:
        env[ENV_CLIENT_CERT] = client_cert.decode()
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


@dataclass(frozen=True)
class RunAs:
    """Who the child becomes: uid, primary gid and supplementary groups, all resolved in
    the parent (the child runs between fork and exec and must not read /etc/passwd)."""

    uid: int
    gid: int
    groups: tuple[int, ...]


def run_as(user: str) -> RunAs:
    """Resolve ``user`` (a name or a numeric uid); an unknown one is a RefusedError."""
    try:
        pw = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except (KeyError, ValueError):
        raise RefusedError(f"user {user!r} does not exist") from None
    return RunAs(pw.pw_uid, pw.pw_gid, tuple(os.getgrouplist(pw.pw_name, pw.pw_gid)))


def preexec(limits: Limits, parent: int, user: RunAs | None = None) -> Callable[[], None]:
    """Runs in the child between fork and exec: become ``user`` (groups first, uid last, so
    no root group survives: subprocess's own ``user=`` keeps gid 0 and uvloop has no such
    argument), die with the parent, apply the limits.

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
        if user is not None:
            os.setgroups(list(user.groups))
            os.setgid(user.gid)
            os.setuid(user.uid)
        # After the uid change: changing credentials clears the parent-death signal.
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
