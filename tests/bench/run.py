"""The benchmark suite (`make bench`): Elemta against smtp-sink, a bare aiosmtpd sink and
Haraka (accept-all, discard), all driven by Postfix's smtp-source in the same run.

    .venv/bin/python -m tests.bench.run [--quick] [--chains none,default,external]
        [--workers 1,2,N] [--sizes 4096,102400] [--peers smtp-sink,aiosmtpd,haraka]
        [--messages 1000] [--sessions 20] [--rounds 3] [--json bench-results.json]

Every server is started once; each is warmed up (Haraka's first ~2,000 messages are slow);
then each round drives every server in turn, in a new order each round, so load from the
other engineers on the machine falls on all of them alike. Messages over 16 KiB are sent
2/5 as many times (``messages_per_round`` in the JSON). Medians of the rounds and ratios
against the peers are printed as a table with the issue's goals, and written as JSON.
Elemta runs as real `elemta serve` processes: fsynced spool, Maildir delivery (waited for
between measurements, not timed), `[logging] level = "warning"`, no metrics endpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.bench.load import Load, LoadError, drive
from tests.bench.report import Series, as_json, goal_table, goals, table
from tests.bench.scenarios import (
    Chain,
    dkim_key,
    publish,
    scenarios,
    signed_message,
    worker_counts,
)
from tests.bench.targets import Kind, SettleError, Target, start_elemta, start_peer
from tests.support.dns_server import ZoneServer

REPO = Path(__file__).resolve().parents[2]
PEERS = ("smtp-sink", "aiosmtpd", "haraka")
HARAKA_WARMUP = 2000
BIG = 16384  # bytes: messages above it are sent 2/5 as many times


def _ints(text: str, cores: int) -> list[int]:
    out = []
    for part in text.split(","):
        part = part.strip()
        if part:
            out.append(cores if part.upper() == "N" else int(part))
    if not out or any(n < 1 for n in out):
        raise argparse.ArgumentTypeError(f"{text!r}: give positive integers (or N), comma-separated")
    return sorted(set(out))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    cores = os.cpu_count() or 1
    ap = argparse.ArgumentParser(prog="python -m tests.bench.run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="smoke run (< 1 min on 2 cores): 4 KiB, workers 1, 1 round, 300 messages")
    ap.add_argument("--chains", default="none,default,external",
                    help="Elemta scenarios: none, default (rate_limiter+spf+dkim+dmarc), external")
    ap.add_argument("--workers", default=None, help=f"comma-separated, N = cores ({cores}); "
                    f"default {','.join(map(str, worker_counts(cores)))}")
    ap.add_argument("--sizes", default=None, help="message sizes in bytes (default 4096,102400)")
    ap.add_argument("--peers", default=",".join(PEERS))
    ap.add_argument("--messages", type=int, default=None, help="per server per round")
    ap.add_argument("--sessions", type=int, default=max(20, 2 * cores))
    ap.add_argument("--sources", type=int, default=max(1, cores // 4),
                    help="parallel smtp-source processes (one cannot load many cores)")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=None, help="messages per server before timing")
    ap.add_argument("--no-dispatch", action="store_true", help="skip the dispatch microbenchmark")
    ap.add_argument("--json", default="bench-results.json", help="where the results go ('' none)")
    a = ap.parse_args(argv)
    try:
        a.chains = [Chain(c.strip()) for c in a.chains.split(",") if c.strip()]
        a.workers = (_ints(a.workers, cores) if a.workers else
                     [1] if a.quick else worker_counts(cores))
        a.sizes = _ints(a.sizes, cores) if a.sizes else [4096] if a.quick else [4096, 102400]
    except (ValueError, argparse.ArgumentTypeError) as e:
        ap.error(str(e))
    a.peers = [p.strip() for p in a.peers.split(",") if p.strip()]
    if unknown := [p for p in a.peers if p not in PEERS]:
        ap.error(f"unknown peers {unknown}: choose from {', '.join(PEERS)}")
    a.messages = a.messages or (300 if a.quick else 1000)
    a.rounds = a.rounds or (1 if a.quick else 3)
    a.warmup = a.warmup if a.warmup is not None else (100 if a.quick else 300)
    if min(a.messages, a.sessions, a.sources, a.rounds) < 1:
        ap.error("--messages, --sessions, --sources and --rounds must be positive")
    a.cores = cores
    return a


def messages_for(size: int, messages: int) -> int:
    """Fewer large messages, so a 100 KiB measurement takes about as long as a 4 KiB one."""
    return messages if size <= BIG else max(messages * 2 // 5, 50)


def dispatch_figures(quick: bool) -> dict[str, Any]:
    """bench_dispatch in its own process (it installs uvloop, as the server does)."""
    code = ("import asyncio, json, uvloop; import tests.bench.bench_dispatch as b; "
            f"b.ROUNDS = {2000 if quick else 20000}; uvloop.install(); "
            "print(json.dumps(asyncio.run(b.main())))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         timeout=300, check=False)
    if out.returncode != 0:
        return {"error": out.stderr[-1000:]}
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def measure(target: Target, load: Load, series: Series) -> None:
    try:
        series.rates.append(drive(target.port, load))
        target.settle(load.messages)
    except (LoadError, SettleError) as e:
        series.errors.append(str(e))
        print(f"  {target.name}: {e}", file=sys.stderr)


def run(a: argparse.Namespace) -> dict[str, Any]:
    started = time.time()
    load_before = os.getloadavg()
    key = dkim_key()
    results: dict[int, dict[str, Series]] = {}
    targets: list[Target] = []
    with ZoneServer() as zone, tempfile.TemporaryDirectory(prefix="elemta-bench-") as tmp:
        work = Path(tmp)
        publish(zone, key)
        start_errors: dict[str, str] = {}
        try:
            for name in a.peers:
                try:
                    targets.append(start_peer(name, work))
                except Exception as e:  # noqa: BLE001 - a peer that cannot start is reported
                    start_errors[name] = str(e)
            for sc in scenarios(a.chains, a.workers):
                try:
                    targets.append(start_elemta(sc, work, zone.address))
                except Exception as e:  # noqa: BLE001
                    start_errors[sc.name] = str(e)
            for name, err in start_errors.items():
                print(f"  {name} did not start: {err[:2000]}", file=sys.stderr)
            for size in a.sizes:
                msg_file = signed_message(size, key).write(work / f"message-{size}.txt")
                load = Load(messages_for(size, a.messages), a.sessions, msg_file, a.sources)
                series = {t.name: Series() for t in targets}
                series.update({n: Series(errors=[e]) for n, e in start_errors.items()})
                for t in targets:  # warm-up, not timed
                    warm = Series()
                    measure(t, load.scaled(HARAKA_WARMUP if t.name == "haraka" and
                                           size == a.sizes[0] else a.warmup), warm)
                    series[t.name].errors += warm.errors
                for r in range(a.rounds):
                    order = list(targets)
                    random.Random(r).shuffle(order)  # no server always follows the same one
                    for t in order:
                        measure(t, load, series[t.name])
                    print(f"  {size // 1024} KiB round {r + 1}/{a.rounds}: " + ", ".join(
                        f"{t.name} {series[t.name].rates[-1]:.0f}" for t in order
                        if series[t.name].rates), file=sys.stderr)
                results[size] = series
        finally:
            for t in targets:
                t.stop()
    dispatch = None if a.no_dispatch else dispatch_figures(a.quick)
    gs = goals(results, a.workers, a.cores, dispatch)
    meta = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "seconds": round(time.time() - started, 1), "cores": a.cores,
            "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
            "messages_per_round": {str(s): messages_for(s, a.messages) for s in a.sizes},
            "sessions": a.sessions, "sources": a.sources,
            "rounds": a.rounds, "workers": a.workers,
            "chains": [c.value for c in a.chains], "peers": a.peers,
            "kinds": {t.name: t.kind.value for t in targets} | {
                n: Kind.ELEMTA.value for n in start_errors if n.startswith("elemta/")},
            "start_errors": start_errors, "dispatch": dispatch}
    print(table(results))
    print(goal_table(gs))
    if dispatch:
        print(f"\ndispatch: {json.dumps(dispatch)}")
    out = as_json(results, gs, meta)
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2) + "\n")
        print(f"\nresults written to {a.json} ({out['seconds']} s)")
    return out


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    out = run(a)
    failed = bool(out["start_errors"]) or any(
        s["errors"] and not s["rounds"] for sz in out["sizes"].values() for s in sz.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
