"""A real Rspamd on loopback ports, offline, for integration tests and the scanning benchmark.

Rspamd is started from the Debian package's stock configuration with a local override
directory (``--var=LOCAL_CONFDIR``) that:

- binds the normal worker and the controller to free loopback ports and turns the proxy off;
- points its DNS at :class:`NxdomainResolver`, a loopback stub that answers NXDOMAIN to every
  name, so RBL and URL lookups never leave the machine and never wait for a timeout;
- replaces the stock public-suffix list (11-17 s to load at every start) with a short one,
  so it starts in about a second.

Its database dir (compiled Hyperscan cache and the like) lives under ``.test-services/rspamd``
in the repository (gitignored) and is kept between runs, which keeps later starts fast.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dnslib
from dnslib.server import DNSServer

from tests.support.ports import free_port, wait_port

REPO = Path(__file__).resolve().parents[2]
STATE_DIR = REPO / ".test-services" / "rspamd"
STOCK_CONFIG = Path("/etc/rspamd/rspamd.conf")

#: The GTUBE test string: every Rspamd answers "reject" to a message carrying it.
GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

_TLDS = "com\nnet\norg\ntest\nexample\ninvalid\nlocalhost\nde\nuk\nco.uk\n"


class _Nxdomain:
    """dnslib resolver: every name is absent (NXDOMAIN), answered at once."""

    def resolve(self, request: dnslib.DNSRecord, handler: Any) -> dnslib.DNSRecord:
        reply = request.reply()
        reply.header.rcode = dnslib.RCODE.NXDOMAIN
        return reply


class _QuietLogger:
    def log_recv(self, *a: Any) -> None: ...
    def log_send(self, *a: Any) -> None: ...
    def log_request(self, *a: Any) -> None: ...
    def log_reply(self, *a: Any) -> None: ...
    def log_truncated(self, *a: Any) -> None: ...
    def log_error(self, *a: Any) -> None: ...
    def log_data(self, *a: Any) -> None: ...


class NxdomainResolver:
    """A loopback UDP DNS server answering NXDOMAIN, in a thread of the test process."""

    def __init__(self) -> None:
        self.port = free_port()
        self._server = DNSServer(_Nxdomain(), port=self.port, address="127.0.0.1",
                                 logger=_QuietLogger())

    def start(self) -> NxdomainResolver:
        self._server.start_thread()
        return self

    def stop(self) -> None:
        self._server.stop()
        self._server.server.server_close()


@dataclass
class RspamdServer:
    """One ``rspamd`` process; ``url`` is what ``[antispam] rspamd_url`` takes."""

    binary: str
    workdir: Path
    port: int = field(default_factory=free_port)
    controller_port: int = field(default_factory=free_port)
    #: Normal (scanning) worker processes; one is plenty for tests, a benchmark wants more.
    workers: int = 1
    proc: subprocess.Popen[bytes] | None = None
    dns: NxdomainResolver | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "rspamd.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _write_config(self, dns_port: int) -> Path:
        conf = self.workdir / "conf"
        (conf / "override.d").mkdir(parents=True, exist_ok=True)
        (conf / "local.d").mkdir(exist_ok=True)
        tlds = self.workdir / "tlds.dat"
        tlds.write_text(_TLDS)
        # Rspamd's own headers (X-Spamd-Result, X-Rspamd-Queue-Id …) come back in its
        # ``milter`` block: the tests check that the MTA applies them.
        (conf / "local.d" / "milter_headers.conf").write_text(
            "extended_spam_headers = true;\nskip_local = false;\nskip_authenticated = false;\n")
        override = conf / "override.d"
        (override / "options.inc").write_text(
            f'dns {{ nameserver = ["127.0.0.1:{dns_port}"]; timeout = 0.5s; '
            f"retransmits = 1; sockets = 4; }}\n"
            f'url_tld = "{tlds}";\n'
            # Loopback clients are "local" in the stock config, which skips some checks.
            "local_addrs = [];\n"
        )
        (override / "worker-normal.inc").write_text(
            f'bind_socket = "127.0.0.1:{self.port}";\ncount = {self.workers};\n')
        (override / "worker-controller.inc").write_text(
            f'bind_socket = "127.0.0.1:{self.controller_port}";\ncount = 1;\n')
        (override / "worker-proxy.inc").write_text("enabled = false;\ncount = 0;\n")
        (override / "worker-fuzzy.inc").write_text("enabled = false;\ncount = -1;\n")
        (override / "logging.inc").write_text(
            f'type = "file";\nfilename = "{self.log_path}";\nlevel = "error";\n')
        return conf

    def start(self, timeout: float = 30.0) -> RspamdServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        db = STATE_DIR / "db"
        db.mkdir(parents=True, exist_ok=True)
        self.dns = NxdomainResolver().start()
        conf = self._write_config(self.dns.port)
        user = ["-u", _user_name(), "-g", _group_name()]
        cmd = [
            self.binary, "-f", "-i", *user, "-c", str(STOCK_CONFIG),
            f"--var=LOCAL_CONFDIR={conf}", f"--var=DBDIR={db}",
            f"--var=RUNDIR={self.workdir}", f"--var=LOGDIR={self.workdir}",
        ]
        with open(self.workdir / "stdout.log", "ab") as out:
            self.proc = subprocess.Popen(cmd, cwd=self.workdir, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        try:
            _wait(self.proc, self.port, timeout)
        except (RuntimeError, TimeoutError):
            said = (self.workdir / "stdout.log").read_text(errors="replace")
            self.stop()
            raise RuntimeError(f"rspamd did not start:\n{said}\n{self.log()}") from None
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # The master forwards SIGTERM to its workers; the group kill is the fallback.
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        _reap_group(self.proc)
        self.proc = None
        if self.dns is not None:
            self.dns.stop()
            self.dns = None


def _wait(proc: subprocess.Popen[bytes], port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}")
        try:
            wait_port(port, 0.2)
            return
        except TimeoutError:
            continue
    raise TimeoutError(f"port {port} not open after {timeout}s")


def _reap_group(proc: subprocess.Popen[bytes] | None) -> None:
    """Workers left behind by a master that died are in its process group: end them."""
    if proc is None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _user_name() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def _group_name() -> str:
    import grp

    return grp.getgrgid(os.getgid()).gr_name


def find_rspamd() -> str | None:
    return shutil.which("rspamd")
