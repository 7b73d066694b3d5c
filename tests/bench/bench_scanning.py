"""Benchmark: SMTP throughput with Rspamd and ClamAV scanning on, against the same server with
both off, measured in the same run on the same machine.

    .venv/bin/python -m tests.bench.bench_scanning [--messages N] [--sessions S] [--size BYTES]

Starts a real rspamd and clamd (offline, as the integration tests do) and two real
``elemta serve`` processes: one with ``antivirus`` and ``antispam`` enabled, one with no
plugins. Each round sends N messages over S concurrent SMTP sessions (connections reused) to
each server in turn; rounds alternate the order so drift hits both. Prints msg/s per round
and the ratio scanning-on / scanning-off (median of rounds) as one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiosmtplib

from builtin_plugins.scanning.clamd_client import ClamdClient
from builtin_plugins.scanning.config import ClamdAddress
from builtin_plugins.scanning.rspamd_client import RspamdClient, RspamdEnvelope
from tests.support.clamd_server import ClamdServer, find_clamd
from tests.support.rspamd_server import RspamdServer, find_rspamd
from tests.support.server import ServerProcess, base_config


def body(size: int) -> bytes:
    head = (b"Subject: benchmark\r\nFrom: alice@example.org\r\nTo: bob@localhost\r\n"
            b"Message-ID: <bench@example.org>\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\n\r\n")
    line = b"The quick brown fox jumps over the lazy dog, again and again.\r\n"
    return head + line * max(1, (size - len(head)) // len(line))


async def blast(port: int, messages: int, sessions: int, data: bytes) -> float:
    """msg/s for ``messages`` sent over ``sessions`` concurrent reused connections."""
    per = [messages // sessions + (1 if i < messages % sessions else 0) for i in range(sessions)]

    async def session(n: int) -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=60,
                                 start_tls=False, local_hostname="bench.example.org")
        await client.connect()
        await client.ehlo(hostname="bench.example.org")
        for _ in range(n):
            errors, _ = await client.sendmail("alice@example.org", ["bob@localhost"], data)
            if errors:
                raise RuntimeError(f"refused: {errors}")
        await client.quit()

    t0 = time.perf_counter()
    await asyncio.gather(*(session(n) for n in per if n))
    return messages / (time.perf_counter() - t0)


async def scanner_ceilings(rspamd: RspamdServer, clamd: ClamdServer, messages: int,
                           sessions: int, data: bytes) -> dict[str, float]:
    """msg/s of each daemon alone, through the plugins' own clients: the ceilings."""
    spam = RspamdClient(rspamd.url)
    env = RspamdEnvelope("127.0.0.1", "bench.example.org", "alice@example.org",
                         ("bob@localhost",), "BENCH", None, "mx.test")
    virus = ClamdClient(ClamdAddress.parse(clamd.address))
    per = max(1, messages // sessions)

    async def rate(scan: Callable[[], Awaitable[object]]) -> float:
        async def worker() -> None:
            for _ in range(per):
                await scan()
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(sessions)))
        return per * sessions / (time.perf_counter() - t0)

    try:
        await rate(lambda: spam.check(data, env))  # warm-up
        return {"rspamd_alone_msg_s": round(await rate(lambda: spam.check(data, env)), 1),
                "clamd_alone_msg_s": round(await rate(lambda: virus.scan(data)), 1)}
    finally:
        await spam.close()


def start_elemta(workdir: Path, enabled: list[str], rspamd: RspamdServer,
                 clamd: ClamdServer) -> ServerProcess:
    workdir.mkdir(parents=True)
    cfg = base_config(workdir, delivery={"local_domains": ["localhost"]},
                      plugins={"enabled": enabled},
                      antispam={"rspamd_url": rspamd.url},
                      antivirus={"clamd": clamd.address},
                      logging={"level": "warning"})
    return ServerProcess(cfg, workdir).start()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=300, help="messages per round and server")
    ap.add_argument("--sessions", type=int, default=10, help="concurrent SMTP sessions")
    ap.add_argument("--size", type=int, default=4096, help="message size in bytes")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rspamd-workers", type=int, default=2, help="rspamd scanning processes")
    args = ap.parse_args()
    rspamd_bin, clamd_bin = find_rspamd(), find_clamd()
    if not rspamd_bin or not clamd_bin:
        sys.exit("rspamd and clamd are needed: bash scripts/install-system-deps.sh "
                 "rspamd clamav-daemon clamav")
    data = body(args.size)
    with tempfile.TemporaryDirectory(prefix="elemta-bench-scan-") as tmp:
        root = Path(tmp)
        rspamd = RspamdServer(rspamd_bin, root / "rspamd", workers=args.rspamd_workers).start()
        clamd = ClamdServer(clamd_bin, root / "clamd", stream_max_length=25 * 1024 * 1024).start()
        servers: list[ServerProcess] = []
        try:
            on = start_elemta(root / "on", ["antivirus", "antispam"], rspamd, clamd)
            servers.append(on)
            off = start_elemta(root / "off", [], rspamd, clamd)
            servers.append(off)
            # Warm-up: connections, Rspamd's first-message costs, page cache.
            asyncio.run(blast(on.port, 50, args.sessions, data))
            asyncio.run(blast(off.port, 50, args.sessions, data))
            rates: dict[str, list[float]] = {"on": [], "off": []}
            for i in range(args.rounds):
                order = [("on", on), ("off", off)] if i % 2 == 0 else [("off", off), ("on", on)]
                for name, srv in order:
                    rate = asyncio.run(blast(srv.port, args.messages, args.sessions, data))
                    rates[name].append(rate)
                    print(f"round {i + 1} scanning {name:3}: {rate:7.1f} msg/s", file=sys.stderr)
            ceilings = asyncio.run(scanner_ceilings(rspamd, clamd, args.messages, args.sessions,
                                                    data))
        finally:
            for srv in servers:
                srv.stop()
            clamd.stop()
            rspamd.stop()
    on_rate, off_rate = statistics.median(rates["on"]), statistics.median(rates["off"])
    print(json.dumps({
        "messages": args.messages, "sessions": args.sessions, "size": len(data),
        "scanning_on_msg_s": round(on_rate, 1), "scanning_off_msg_s": round(off_rate, 1),
        "ratio_on_over_off": round(on_rate / off_rate, 3), **ceilings,
        "rspamd_workers": args.rspamd_workers,
    }))


if __name__ == "__main__":
    main()
