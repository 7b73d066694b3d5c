"""CPU time per message, user and system, of every server process: the figure throughput
follows on a CPU-bound machine, and one that other load on a shared machine blurs far less
than messages per second.

    .venv/bin/python -m tests.bench.cpu_cost [--chains none,default] [--workers 1]
        [--peers haraka,aiosmtpd] [--size 4096] [--messages 3000] [--sessions 20]

Each server is driven by smtp-source as in the suite (tests/bench/run.py); the CPU its
process tree used (from /proc: the server, its workers and their threads, plugin
subprocesses included) is divided by the messages sent. Elemta's Maildir deliveries are
waited for before the reading, so the queue's work is counted too.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from tests.bench.load import Load, drive
from tests.bench.scenarios import Chain, Scenario, dkim_key, publish, signed_message
from tests.bench.targets import Target, start_elemta, start_peer
from tests.support.dns_server import ZoneServer

_TICK = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out


def tree_cpu(pid: int) -> tuple[float, float]:
    """(user, system) seconds of ``pid`` and its live descendants, reaped children included."""
    user = system = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[11..14] = utime stime cutime cstime (stat fields 14..17)
        user += (int(fields[11]) + int(fields[13])) / _TICK
        system += (int(fields[12]) + int(fields[14])) / _TICK
        todo += _children(p)
    return user, system


def _pid(t: Target) -> int:
    proc = t.server.proc if t.server is not None else t.peer.proc if t.peer is not None else None
    assert proc is not None
    return proc.pid


def measure(t: Target, load: Load) -> tuple[float, float, float]:
    """(user µs, system µs, messages/s) per message for one run of ``load``."""
    pid = _pid(t)
    u0, s0 = tree_cpu(pid)
    rate = drive(t.port, load)
    t.settle(load.messages)
    u1, s1 = tree_cpu(pid)
    n = load.messages
    return (u1 - u0) / n * 1e6, (s1 - s0) / n * 1e6, rate


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.bench.cpu_cost")
    ap.add_argument("--chains", default="none")
    ap.add_argument("--workers", default="1")
    ap.add_argument("--peers", default="haraka,aiosmtpd")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args(argv)
    key = dkim_key()
    with ZoneServer() as zone, tempfile.TemporaryDirectory(prefix="elemta-cpu-") as tmp:
        work = Path(tmp)
        publish(zone, key)
        msg = signed_message(a.size, key).write(work / "message.txt")
        targets: list[Target] = []
        try:
            for p in filter(None, a.peers.split(",")):
                targets.append(start_peer(p, work))
            for c in filter(None, a.chains.split(",")):
                for w in a.workers.split(","):
                    targets.append(start_elemta(Scenario(Chain(c), int(w)), work, zone.address))
            warm = Load(min(a.messages, 2500), a.sessions, msg)
            for t in targets:
                drive(t.port, warm)
                t.settle(warm.messages)
            print(f"{'server':22} {'user µs':>9} {'sys µs':>9} {'total µs':>9} {'msg/s':>7}")
            for r in range(a.rounds):
                for t in targets:
                    u, s, rate = measure(t, Load(a.messages, a.sessions, msg))
                    print(f"{t.name:22} {u:9.0f} {s:9.0f} {u + s:9.0f} {rate:7.0f}  (round {r + 1})")
                    sys.stdout.flush()
                time.sleep(0.5)
        finally:
            for t in targets:
                t.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
