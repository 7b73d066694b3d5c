"""SMTP throughput: `elemta serve` (fsynced spool + Maildir delivery) against a bare aiosmtpd
sink, both driven by Postfix's smtp-source in the same run, interleaved.

    .venv/bin/python -m tests.bench.bench_smtp [--messages 2000] [--sessions 20] [--size 4096]

Prints a JSON object with messages/s per server (median of rounds) and the ratio.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.ports import free_port, wait_port
from tests.support.server import ServerProcess, base_config

SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"


def drive(port: int, messages: int, sessions: int, size: int) -> float:
    """messages/s for one smtp-source run (new connection per message, as smtp-source does)."""
    t0 = time.perf_counter()
    subprocess.run([SMTP_SOURCE, "-s", str(sessions), "-m", str(messages), "-l", str(size),
                    "-f", "bench@example.org", "-t", "bob@localhost", f"127.0.0.1:{port}"],
                   check=True, timeout=600, stdout=subprocess.DEVNULL)
    return messages / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--plugins", default="", help="comma-separated plugins to enable in elemta")
    ap.add_argument("--sync", default="fsync", choices=["fsync", "syncfs"], help="[spool] sync")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        enabled = [p for p in a.plugins.split(",") if p]
        srv = ServerProcess(base_config(work, plugins={"enabled": enabled},
                                        logging={"level": "warning"}, spool={"sync": a.sync}),
                            work)
        srv.start()
        sink_port = free_port()
        sink = subprocess.Popen([sys.executable, "-m", "tests.bench.sink_aiosmtpd", str(sink_port)])
        try:
            wait_port(sink_port)
            drive(srv.port, 200, a.sessions, a.size)  # warm-up both
            drive(sink_port, 200, a.sessions, a.size)
            el, bare = [], []
            for _ in range(a.rounds):
                el.append(drive(srv.port, a.messages, a.sessions, a.size))
                bare.append(drive(sink_port, a.messages, a.sessions, a.size))
        finally:
            sink.terminate()
            sink.wait(10)
            srv.stop()
    out = {
        "messages": a.messages, "sessions": a.sessions, "size": a.size, "plugins": enabled,
        "sync": a.sync,
        "elemta_msgs_per_s": round(statistics.median(el), 1),
        "aiosmtpd_sink_msgs_per_s": round(statistics.median(bare), 1),
        "ratio_elemta_vs_bare_aiosmtpd": round(statistics.median(el) / statistics.median(bare), 3),
        "rounds": {"elemta": [round(x, 1) for x in el], "aiosmtpd": [round(x, 1) for x in bare]},
    }
    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
