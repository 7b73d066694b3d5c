"""Relay throughput: smtp-source in, Elemta relays to Postfix's smtp-sink, against Postfix
relaying to the same smtp-sink, in the same run.

    .venv/bin/python -m tests.bench.bench_relay [--messages 2000] [--sessions 20]
        [--size 4096] [--rounds 2]

Both relays take mail from smtp-source (a new connection per message, HELO, no pipelining)
and hand it to one smtp-sink through their queue: Elemta with its fsynced spool, default
workers, ``relayhost = "[127.0.0.1]:SINK"``, log level warning; Postfix with a minimal
main.cf/master.cf in a temp dir (loopback only, no DNS, ``relayhost = [127.0.0.1]:SINK``),
stopped at the end. "accepted" is messages per second until smtp-source finished;
"relayed" is until the sink counted every message (end to end). The order alternates per
round so load from others on the machine falls on both alike. Needs root (Postfix).
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

from tests.support.ports import free_port, wait_port
from tests.support.server import ServerProcess, base_config

SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
RECIPIENT = "bench@relay.test"


class CountingSink:
    """smtp-sink with ``-c``: it prints ``mesg=N`` as messages arrive; we keep the latest."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen([SMTP_SINK, "-c", "-u", "nobody", f"127.0.0.1:{self.port}",
                                      "1024"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.count = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        wait_port(self.port)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        tail = b""
        stream = cast(io.BufferedReader, self.proc.stdout)
        while chunk := stream.read1(4096):
            tail = (tail + chunk)[-256:]
            found = re.findall(rb"mesg=(\d+)", tail)
            if found:
                self.count = int(found[-1])

    def wait_for(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.count < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix-relay.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:{sink}
smtpd_relay_restrictions = permit_mynetworks, reject
smtp_tls_security_level = none
smtpd_tls_security_level = none
smtp_dns_support_level = disabled
disable_dns_lookups = yes
maillog_file_prefixes = {d}
maillog_file = {d}/maillog
alias_maps =
alias_database =
local_recipient_maps =
biff = no
"""

MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n - n 60   1 pickup
cleanup   unix  n - n -    0 cleanup
qmgr      unix  n - n 300  1 qmgr
rewrite   unix  - - n -    - trivial-rewrite
bounce    unix  - - n -    0 bounce
defer     unix  - - n -    0 bounce
trace     unix  - - n -    0 bounce
verify    unix  - - n -    1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -    - proxymap
smtp      unix  - - n -    - smtp
relay     unix  - - n -    - smtp
showq     unix  n - n -    - showq
error     unix  - - n -    - error
retry     unix  - - n -    - error
discard   unix  - - n -    - discard
anvil     unix  - - n -    1 anvil
scache    unix  - - n -    1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


class PostfixRelay:
    """A private Postfix instance (its own config, queue and port), loopback only."""

    def __init__(self, work: Path, sink_port: int) -> None:
        self.dir = work / "postfix"
        self.port = free_port()
        for sub in ("conf", "queue", "data"):
            (self.dir / sub).mkdir(parents=True)
        shutil.chown(self.dir / "data", "postfix")
        (self.dir / "conf" / "main.cf").write_text(MAIN_CF.format(d=self.dir, sink=sink_port))
        (self.dir / "conf" / "master.cf").write_text(MASTER_CF.format(port=self.port))
        self._postfix("start")
        wait_port(self.port)

    def _postfix(self, cmd: str) -> None:
        r = subprocess.run([POSTFIX, "-c", str(self.dir / "conf"), cmd], check=False,
                           capture_output=True,
                           text=True, timeout=60)
        if r.returncode != 0:
            log = (self.dir / "maillog").read_text() if (self.dir / "maillog").exists() else ""
            raise RuntimeError(f"postfix {cmd} failed: {r.stderr}{log[-2000:]}")

    def stop(self) -> None:
        try:
            self._postfix("stop")
        except RuntimeError:
            pid = self.dir / "queue" / "pid" / "master.pid"
            if pid.exists():
                os.kill(int(pid.read_text().split()[0]), 9)


def elemta_relay(work: Path, sink_port: int) -> ServerProcess:
    d = work / "elemta"
    d.mkdir()
    cfg = base_config(d, server={"relay_networks": ["127.0.0.0/8"]},
                      delivery={"relayhost": f"[127.0.0.1]:{sink_port}"},
                      logging={"level": "warning"})
    cfg["server"].pop("workers", None)  # the default: one worker per core
    return ServerProcess(cfg, d).start()


def drive(port: int, messages: int, sessions: int, size: int, sink: CountingSink,
          timeout: float = 180.0) -> tuple[float, float]:
    """(accepted msg/s, relayed msg/s) for one load."""
    start_count = sink.count
    t0 = time.perf_counter()
    r = subprocess.run([SMTP_SOURCE, "-s", str(sessions), "-m", str(messages), "-l", str(size),
                        "-M", "client.test", "-f", "bench@source.test", "-t", RECIPIENT,
                        f"127.0.0.1:{port}"], check=False, capture_output=True, timeout=timeout)
    accepted = time.perf_counter() - t0
    if r.returncode != 0 or r.stderr.strip():
        raise RuntimeError(f"smtp-source failed: {r.stderr.decode(errors='replace')[:500]}")
    if not sink.wait_for(start_count + messages, timeout):
        raise RuntimeError(f"only {sink.count - start_count} of {messages} messages were relayed")
    relayed = time.perf_counter() - t0
    return messages / accepted, messages / relayed


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m tests.bench.bench_relay", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench_relay needs root: Postfix runs as its own instance")
    work = Path(tempfile.mkdtemp(prefix="elemta-bench-relay-"))
    work.chmod(0o755)  # Postfix's daemons run as postfix and must reach their queue
    stops: list[Callable[[], object]] = []
    try:
        sink = CountingSink()
        stops.append(sink.stop)
        postfix = PostfixRelay(work, sink.port)
        stops.append(postfix.stop)
        elemta = elemta_relay(work, sink.port)
        stops.append(elemta.stop)
        targets = {"elemta": elemta.port, "postfix": postfix.port}
        warm = max(args.messages // 10, 50)
        for port in targets.values():
            drive(port, warm, args.sessions, args.size, sink)
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in targets}
        order = list(targets)
        for rnd in range(args.rounds):
            for name in order if rnd % 2 == 0 else reversed(order):
                results[name].append(drive(targets[name], args.messages, args.sessions,
                                           args.size, sink))
        print(f"relay: {args.messages} messages of {args.size} B, {args.sessions} sessions, "
              f"{args.rounds} rounds (median), smtp-source -> relay -> smtp-sink")
        med = {n: (statistics.median(a for a, _ in r), statistics.median(b for _, b in r))
               for n, r in results.items()}
        for name, (acc, rel) in med.items():
            print(f"  {name:8} accepted {acc:8.0f} msg/s   relayed {rel:8.0f} msg/s")
        print(f"  elemta/postfix: accepted {med['elemta'][0] / med['postfix'][0]:.2f}x, "
              f"relayed {med['elemta'][1] / med['postfix'][1]:.2f}x")
    finally:
        for stop in reversed(stops):
            stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
