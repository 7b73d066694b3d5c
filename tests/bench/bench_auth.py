"""SMTP throughput with SPF + DKIM + DMARC on versus off, in one run, same DNS server.

    .venv/bin/python -m tests.bench.bench_auth [--messages 300] [--sessions 8] [--rounds 3]

Two `elemta serve` processes (plugins off; spf, dkim and dmarc on) resolve through the same
loopback DNS server (dnslib, in this process) with the resolver cache on, as in production.
Each round sends the same DKIM-signed (RSA-2048), SPF-passing, DMARC p=reject message from
a pool of persistent aiosmtplib sessions to each server in turn. Prints a JSON object with
messages/s per server (median of rounds) and the on/off ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiosmtplib

from builtin_plugins.auth.dkim_sign import Signer, header_list, sign_message
from builtin_plugins.auth.keys import KeyType, generate
from elemta_core.hooks.types import HeaderChange, HeaderOp
from elemta_core.message.message import Message
from tests.support.dns_server import ZoneServer
from tests.support.server import ServerProcess, base_config

BODY = "Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n" * 64  # 3.7 KiB


def signed_message() -> tuple[bytes, str]:
    _, key = generate(KeyType.RSA, 2048)
    msg = Message((f"From: Alice <alice@example.org>\r\nTo: bob@localhost\r\n"
                   f"Subject: bench\r\nMessage-ID: <bench@example.org>\r\n\r\n{BODY}").encode())
    [sig] = sign_message(msg, [Signer("example.org", "s1", key)],
                         header_list(msg, ["from", "to", "subject", "message-id"], ["from"]),
                         "relaxed/relaxed")
    return msg.with_changes([HeaderChange(HeaderOp.ADD, "DKIM-Signature", sig)]).raw, \
        key.txt_record()


async def drive(port: int, raw: bytes, messages: int, sessions: int) -> float:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(messages):
        queue.put_nowait(i)

    async def worker() -> None:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=60, start_tls=False)
        await smtp.connect()
        await smtp.ehlo(hostname="client.example.org")
        while True:
            try:
                queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            errors, _ = await smtp.sendmail("alice@example.org", ["bob@localhost"], raw)
            if errors:
                raise RuntimeError(f"refused: {errors}")
        await smtp.quit()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(sessions)))
    return messages / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=300)
    ap.add_argument("--sessions", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    raw, record = signed_message()
    with ZoneServer() as zone, tempfile.TemporaryDirectory() as tmp:
        zone.txt("example.org", "v=spf1 ip4:127.0.0.0/8 -all")
        zone.txt("s1._domainkey.example.org", record)
        zone.txt("_dmarc.example.org", "v=DMARC1; p=reject")
        dns = {"nameservers": [zone.address]}
        servers: dict[str, ServerProcess] = {}
        for name, plugins in (("off", []), ("on", ["spf", "dkim", "dmarc"])):
            d = Path(tmp) / name
            d.mkdir()
            servers[name] = ServerProcess(base_config(
                d, plugins={"enabled": plugins}, dns=dns,
                authentication={"dmarc_policy": "reject"}), d).start()
        try:
            rates: dict[str, list[float]] = {"off": [], "on": []}
            asyncio.run(drive(servers["on"].port, raw, 20, 2))  # warm-up: caches, imports
            asyncio.run(drive(servers["off"].port, raw, 20, 2))
            for _ in range(args.rounds):
                for name, srv in servers.items():
                    rates[name].append(asyncio.run(drive(srv.port, raw, args.messages,
                                                         args.sessions)))
            delivered = len(servers["on"].maildir_messages("bob@localhost"))
            sample = servers["on"].wait_delivered("bob@localhost", 1)[0].read_bytes()
        finally:
            for srv in servers.values():
                srv.stop()
    if b"dkim=pass" not in sample or b"dmarc=pass" not in sample or b"spf=pass" not in sample:
        sys.exit(f"checks did not pass in the 'on' server:\n{sample[:800]!r}")
    off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
    print(json.dumps({"messages_per_round": args.messages, "sessions": args.sessions,
                      "rounds": args.rounds, "off_msgs_per_s": round(off, 1),
                      "on_msgs_per_s": round(on, 1), "on_off_ratio": round(on / off, 3),
                      "dns_queries": sum(zone.queries.values()),
                      "delivered_on": delivered}, indent=2))


if __name__ == "__main__":
    main()
