"""The peers Elemta is measured against, started on loopback ports for one benchmark run:
Postfix's smtp-sink (the ceiling), a bare aiosmtpd sink, and Haraka (accept-all, discard).

Haraka is installed from npm into `.test-services/haraka` once and reused (read PITFALLS.md:
one process with nodes=0, rDNS answered by a local plugin, discard needs YES_REALLY_DO_DISCARD).
Its working directory is what `haraka -i` makes: the package's stock `connection.ini` is
required (without it every connection dies in connect_respond reading `cfg.message`, which
Haraka then reports as the rDNS plugin "running its callback multiple times").
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.ports import free_port, wait_port

REPO = Path(__file__).resolve().parents[2]
HARAKA_HOME = REPO / ".test-services" / "haraka"
HARAKA_VERSION = "3.3.4"

ACCEPT_ALL_JS = """\
// Benchmark plugin: no rDNS lookup, every recipient accepted.
exports.hook_lookup_rdns = function (next) { next(OK, 'localhost'); };
exports.hook_rcpt = function (next) { next(OK); };
"""


@dataclass
class Peer:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    workdir: Path | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def smtp_sink(port: int | None = None) -> Peer:
    port = port or free_port()
    sink = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    args = [sink, "-c", "-u", "nobody", f"127.0.0.1:{port}", "1024"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return Peer("smtp-sink", port, proc)


def aiosmtpd_sink(port: int | None = None) -> Peer:
    port = port or free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.bench.sink_aiosmtpd", str(port)],
                            cwd=REPO)
    wait_port(port)
    return Peer("aiosmtpd", port, proc)


def install_haraka() -> Path:
    bin_ = HARAKA_HOME / "node_modules" / ".bin" / "haraka"
    if not bin_.exists():
        if shutil.which("npm") is None:
            raise RuntimeError("Haraka needs Node.js and npm: apt-get install nodejs npm")
        HARAKA_HOME.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error",
                        f"Haraka@{HARAKA_VERSION}"], cwd=HARAKA_HOME, check=True, timeout=900)
    return bin_


def haraka(workdir: Path, port: int | None = None, nodes: int = 0) -> Peer:
    """Haraka accepting every recipient and discarding every message; ``nodes=0`` is one
    process, ``nodes=N`` a cluster of N workers. Its log goes to ``workdir/haraka.log``."""
    port = port or free_port()
    bin_ = install_haraka()
    cfg = workdir / "config"
    (workdir / "plugins").mkdir(parents=True, exist_ok=True)
    cfg.mkdir(parents=True, exist_ok=True)
    shutil.copy(HARAKA_HOME / "node_modules" / "Haraka" / "config" / "connection.ini", cfg)
    (workdir / "plugins" / "accept_all.js").write_text(ACCEPT_ALL_JS)
    (cfg / "smtp.ini").write_text(f"listen=127.0.0.1:{port}\nnodes={nodes}\n")
    (cfg / "plugins").write_text("accept_all\nqueue/discard\n")
    (cfg / "me").write_text("haraka.test\n")
    (cfg / "log.ini").write_text("[main]\nlevel=error\n")
    env = {**os.environ, "YES_REALLY_DO_DISCARD": "1"}
    log = workdir / "haraka.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(["node", str(bin_), "-c", str(workdir)], cwd=workdir, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_port(port, 60)
    except TimeoutError:
        proc.kill()
        proc.wait(5)
        raise RuntimeError(f"haraka did not start:\n{log.read_text(errors='replace')[-3000:]}")
    return Peer("haraka", port, proc, workdir)
