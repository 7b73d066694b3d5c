"""A real clamd on a loopback TCP port, offline, for integration tests and the benchmark.

The signature database is one line written here: the EICAR test string as an ``.ndb``
signature. freshclam is never run; clamd loads that database in well under a second.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.ports import free_port, wait_port

# Assembled at run time, so that no file in the repository trips a virus scanner.
EICAR = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!" + b"$H+H*")
SIGNATURE_NAME = "Elemta.Test.EICAR"


@dataclass
class ClamdServer:
    """One ``clamd`` process; ``address`` is what ``[antivirus] clamd`` takes."""

    binary: str
    workdir: Path
    stream_max_length: int = 1024 * 1024
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "clamd.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _write_config(self) -> Path:
        db = self.workdir / "db"
        db.mkdir(parents=True, exist_ok=True)
        (db / "elemta-test.ndb").write_text(f"{SIGNATURE_NAME}:0:*:{EICAR.hex()}\n")
        conf = self.workdir / "clamd.conf"
        conf.write_text(
            "Foreground yes\n"
            f"TCPSocket {self.port}\n"
            "TCPAddr 127.0.0.1\n"
            f"DatabaseDirectory {db}\n"
            f"LogFile {self.log_path}\n"
            f"PidFile {self.workdir / 'clamd.pid'}\n"
            f"StreamMaxLength {self.stream_max_length}\n"
            "MaxThreads 4\n"
            "SelfCheck 0\n"
            "OfficialDatabaseOnly no\n"
            "Bytecode no\n"
        )
        return conf

    def start(self, timeout: float = 30.0) -> ClamdServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self._write_config()
        with open(self.workdir / "stdout.log", "ab") as out:
            self.proc = subprocess.Popen([self.binary, "--config-file", str(conf)],
                                         cwd=self.workdir, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                said = (self.workdir / "stdout.log").read_text(errors="replace")
                raise RuntimeError(f"clamd exited {self.proc.returncode}:\n{said}\n{self.log()}")
            try:
                wait_port(self.port, 0.2)
                return self
            except TimeoutError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"clamd did not start:\n{self.log()}") from None

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


def find_clamd() -> str | None:
    return shutil.which("clamd") or (
        "/usr/sbin/clamd" if Path("/usr/sbin/clamd").exists() else None)
