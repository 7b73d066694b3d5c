"""ARC through two of our own servers: the first seals, the second validates and seals
again, and `elemta auth verify` validates the two-hop chain it delivered."""

from __future__ import annotations

import json
import smtplib
from pathlib import Path

from builtin_plugins.auth.dkim_sign import DkimSignPlugin
from tests.integration.auth.conftest import dns_section
from tests.support.dns_server import ZoneServer
from tests.support.server import ServerProcess

PLUGINS = ["spf", "dkim", "dmarc", "arc", "arc_seal"]


def keyed_zone(zone: ZoneServer, tmp: Path, domain: str) -> str:
    path = tmp / f"{domain}.pem"
    line = DkimSignPlugin.keygen(path, domain, "arc", "rsa", 1024)
    record = "".join(part for part in line.split('"')[1::2])
    zone.txt(f"arc._domainkey.{domain}", record)
    return str(path)


def relay(srv: ServerProcess, raw: bytes) -> bytes:
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=20) as s:
        s.ehlo("relay.example.org")
        s.sendmail("alice@example.org", ["bob@localhost"], raw)
    [path] = srv.wait_delivered("bob@localhost", 1, timeout=15)
    return Path(path).read_bytes()


def test_seal_then_validate_through_two_servers(elemta_server, zone: ZoneServer,
                                                tmp_path: Path) -> None:
    zone.txt("example.org", "v=spf1 ip4:127.0.0.0/8 -all")
    servers = []
    for n, domain in enumerate(("one.test", "two.test")):
        key = keyed_zone(zone, tmp_path, domain)
        servers.append(elemta_server(
            plugins={"enabled": PLUGINS}, dns=dns_section(zone),
            server={"hostname": f"mx.{domain}"},
            authentication={"arc_seal_domain": domain, "arc_seal_selector": "arc",
                            "arc_seal_key": key}))
    first, second = servers
    original = (b"From: alice@example.org\r\nTo: bob@localhost\r\nSubject: arc\r\n"
                b"Message-ID: <arc@example.org>\r\n\r\nthrough two hops\r\n")
    hop1 = relay(first, original)
    assert b"ARC-Seal: i=1; cv=none; a=rsa-sha256; d=one.test; s=arc" in hop1
    assert b"ARC-Authentication-Results: i=1; mx.one.test; spf=pass" in hop1

    hop2 = relay(second, hop1)
    unfolded = hop2.replace(b"\r\n ", b" ")
    assert b"Authentication-Results: mx.two.test; spf=pass" in unfolded
    assert b"arc=pass (i=1)" in unfolded
    assert b"ARC-Seal: i=2; cv=pass; a=rsa-sha256; d=two.test; s=arc" in hop2

    eml = tmp_path / "hop2.eml"
    eml.write_bytes(hop2)
    out = second.cli("auth", "verify", str(eml), "--nameserver", zone.address)
    report = json.loads(out.stdout)
    assert report["arc"]["cv"] == "pass" and report["arc"]["instances"] == 2
    assert [s["instance"] for s in report["arc"]["sets"]] == [2, 1]

    tampered = tmp_path / "tampered.eml"
    tampered.write_bytes(hop2.replace(b"through two hops", b"through three hops"))
    bad = json.loads(second.cli("auth", "verify", str(tampered), "--nameserver",
                                zone.address).stdout)
    assert bad["arc"]["cv"] == "fail"
