"""The load generator: Postfix's smtp-source, one or several processes against one port.

smtp-source opens a new connection per message (no ``-d``), says HELO and never pipelines
(PITFALLS.md). On a many-core machine one smtp-source process can be the bottleneck, so
``sources`` processes split the messages and sessions between them and the time is taken
from the first start to the last exit.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.bench.scenarios import HELO, RECIPIENT, SENDER

SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"


class LoadError(RuntimeError):
    """smtp-source failed or did not finish: the measurement is void."""


@dataclass(frozen=True)
class Load:
    messages: int
    sessions: int
    message_file: Path
    sources: int = 1
    timeout: float = 300.0

    def scaled(self, messages: int) -> Load:
        return Load(messages, self.sessions, self.message_file, self.sources, self.timeout)


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def drive(port: int, load: Load) -> float:
    """Messages per second accepted by the server on ``port`` for this load."""
    if not Path(SMTP_SOURCE).exists():
        raise LoadError("smtp-source is missing: apt-get install postfix (No configuration)")
    parts = min(load.sources, load.messages)
    procs: list[subprocess.Popen[bytes]] = []
    t0 = time.perf_counter()
    for msgs, sess in zip(_split(load.messages, parts), _split(load.sessions, parts)):
        procs.append(subprocess.Popen(
            [SMTP_SOURCE, "-s", str(max(sess, 1)), "-m", str(msgs), "-F", str(load.message_file),
             "-M", HELO, "-f", SENDER, "-t", RECIPIENT, f"127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    errors = []
    try:
        for p in procs:
            _, err = p.communicate(timeout=max(load.timeout - (time.perf_counter() - t0), 1))
            if p.returncode != 0 or err.strip():
                errors.append(f"smtp-source exited {p.returncode}: {err.decode(errors='replace')[:500]}")
    except subprocess.TimeoutExpired:
        errors.append(f"smtp-source did not finish in {load.timeout:.0f}s")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(5)
    elapsed = time.perf_counter() - t0
    if errors:
        raise LoadError("; ".join(errors))
    return load.messages / elapsed
