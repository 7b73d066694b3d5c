"""What the benchmark suite measures: Elemta's plugin chains, the message it sends, and the
DNS zone that makes the authentication checks do real work.

One signed message file per size is sent to every server of a run (smtp-source ``-F``), so
Elemta, Haraka and the sinks receive the same bytes. The default chain checks it against a
local DNS server: SPF passes for 127.0.0.0/8, the RSA-2048 DKIM signature verifies, DMARC
p=reject aligns. The rate limiter is told not to exempt loopback (its default) so its
counting runs on every session, with limits high enough never to refuse the benchmark.
"""

from __future__ import annotations

import enum
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builtin_plugins.auth.dkim_sign import Signer, header_list, sign_message
from builtin_plugins.auth.keys import DkimKey, KeyType, generate
from elemta_core.hooks.types import HeaderChange, HeaderOp
from elemta_core.message.message import Message
from tests.support.dns_server import ZoneServer
from tests.support.server import base_config

SENDER = "alice@example.org"
RECIPIENT = "bob@localhost"
HELO = "client.example.org"
DOMAIN = "example.org"
SELECTOR = "bench"
NOOP_PLUGIN = Path(__file__).parent / "plugins" / "noop_rcpt.py"
DEFAULT_CHAIN = ("rate_limiter", "spf", "dkim", "dmarc")
_LINE = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\n"


class Chain(str, enum.Enum):
    """The plugins an Elemta server under test runs."""

    NONE = "none"  # no plugin: SMTP + fsynced spool + Maildir delivery only
    DEFAULT = "default"  # rate_limiter + spf + dkim + dmarc against the local DNS server
    EXTERNAL = "external"  # one external (gRPC, subprocess) plugin on rcpt_to


@dataclass(frozen=True)
class Scenario:
    """One Elemta configuration: a chain and a number of worker processes."""

    chain: Chain
    workers: int

    @property
    def name(self) -> str:
        return f"elemta/{self.chain.value}/w{self.workers}"


def worker_counts(cores: int | None = None) -> list[int]:
    """1, 2 and one per core (and 8, where the scaling goal is judged), without repeats."""
    n = cores or os.cpu_count() or 1
    return sorted({1, 2, n} | ({8} if n >= 8 else set()))


def scenarios(chains: list[Chain], workers: list[int]) -> list[Scenario]:
    return [Scenario(c, w) for c in chains for w in workers]


# -- the message ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedMessage:
    """A DKIM-signed message of about ``size`` bytes, with LF line ends as smtp-source's
    ``-F`` wants them (it sends each line with CRLF, the form that was signed)."""

    size: int
    lf_bytes: bytes

    def write(self, path: Path) -> Path:
        path.write_bytes(self.lf_bytes)
        return path


def dkim_key() -> DkimKey:
    return generate(KeyType.RSA, 2048)[1]


def signed_message(size: int, key: DkimKey) -> SignedMessage:
    """Headers, a body of text lines padding the whole to ``size`` bytes, and a signature."""
    head = (f"From: Alice <{SENDER}>\r\nTo: {RECIPIENT}\r\nSubject: benchmark {size} bytes\r\n"
            f"Date: Wed, 25 Nov 2026 12:00:00 +0000\r\n"
            f"Message-ID: <bench-{size}@{DOMAIN}>\r\n\r\n")
    line = _LINE.replace("\n", "\r\n")
    body_len = max(size - len(head) - 600, len(line))  # ~600 bytes of DKIM-Signature
    body = line * (body_len // len(line) + 1)
    msg = Message((head + body).encode())
    [sig] = sign_message(msg, [Signer(DOMAIN, SELECTOR, key)],
                         header_list(msg, ["from", "to", "subject", "date", "message-id"],
                                     ["from"]), "relaxed/relaxed")
    raw = msg.with_changes([HeaderChange(HeaderOp.ADD, "DKIM-Signature", sig)]).raw
    return SignedMessage(size, raw.replace(b"\r\n", b"\n"))


def publish(zone: ZoneServer, key: DkimKey) -> None:
    """The sender domain's SPF, DKIM key and DMARC policy, and SPF for the HELO name."""
    zone.txt(DOMAIN, "v=spf1 ip4:127.0.0.0/8 -all")
    zone.txt(HELO, "v=spf1 ip4:127.0.0.0/8 -all")
    zone.a(HELO, "127.0.0.1")
    zone.txt(f"{SELECTOR}._domainkey.{DOMAIN}", key.txt_record())
    zone.txt(f"_dmarc.{DOMAIN}", "v=DMARC1; p=reject")


# -- Elemta's configuration -----------------------------------------------------------------


def external_entry() -> dict[str, Any]:
    """The catalog entry of the no-op rcpt_to plugin (tests/bench/plugins/noop_rcpt.py)."""
    digest = hashlib.sha256(NOOP_PLUGIN.read_bytes()).hexdigest()
    return {"name": "noop_rcpt", "command": ["{python}", str(NOOP_PLUGIN)],
            "sha256": {str(NOOP_PLUGIN): digest}, "mode": "auto", "hooks_timeout_ms": 5000}


def elemta_config(work: Path, scenario: Scenario, dns_address: str) -> dict[str, Any]:
    """The TOML (as a dict) of one server under test: warning logs, no metrics endpoint,
    the fsynced spool (the default), ``workers`` processes."""
    plugins: dict[str, Any] = {"enabled": []}
    extra: dict[str, dict[str, Any]] = {}
    if scenario.chain is Chain.DEFAULT:
        plugins = {"enabled": list(DEFAULT_CHAIN)}
        extra["authentication"] = {"dmarc_policy": "reject"}
        extra["rate_limiter"] = {"allow": [], "max_connections_per_ip": 10_000,
                                 "connection_rate_per_minute": 10_000_000}
    elif scenario.chain is Chain.EXTERNAL:
        plugins = {"enabled": [], "external": [external_entry()]}
    return base_config(work, server={"workers": scenario.workers, "max_connections_per_ip": 10_000},
                       plugins=plugins, logging={"level": "warning"}, metrics={"listen": ""},
                       dns={"nameservers": [dns_address]}, **extra)


AUTH_PASS = (b"spf=pass", b"dkim=pass", b"dmarc=pass")


def check_delivered(chain: Chain, raw: bytes) -> str | None:
    """Why a delivered message shows the chain did not do its work, or None when it did."""
    if chain is Chain.DEFAULT:
        missing = [m.decode() for m in AUTH_PASS if m not in raw]
        if missing:
            return f"no {', '.join(missing)} in the delivered message:\n{raw[:1200]!r}"
    return None
