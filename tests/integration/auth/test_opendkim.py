"""Interoperability with OpenDKIM: our signatures verify in OpenDKIM, and OpenDKIM's in ours.

OpenDKIM runs for real (Debian `opendkim` in its test mode, `opendkim-testmsg`), resolving
keys through libunbound forwarded to the loopback DNS server the test writes.
"""

from __future__ import annotations

import json
import re
import smtplib
import subprocess
from pathlib import Path

from builtin_plugins.auth.dkim_sign import DkimSignPlugin
from tests.integration.auth.conftest import dns_section
from tests.support.dns_server import ZoneServer
from tests.support.server import ServerProcess
from tests.support.services import require_binary

MSG = (b"From: Alice <alice@example.org>\r\nTo: bob@localhost\r\nSubject: interop\r\n"
       b"Date: Wed, 25 Nov 2026 10:00:00 +0000\r\nMessage-ID: <interop@example.org>\r\n\r\n"
       b"Hello from one DKIM implementation to another.\r\n\r\n")


def publish_key(zone: ZoneServer, tmp: Path, selector: str, kind: str) -> Path:
    path = tmp / f"{selector}.pem"
    line = DkimSignPlugin.keygen(path, "example.org", selector, kind)
    zone.txt(f"{selector}._domainkey.example.org", "".join(line.split('"')[1::2]))
    return path


def opendkim_verify(zone: ZoneServer, tmp: Path, eml: Path) -> str:
    opendkim = require_binary("opendkim", "/usr/sbin/opendkim")
    (tmp / "unbound.conf").write_text(
        "server:\n  do-not-query-localhost: no\n  module-config: \"iterator\"\n"
        f"forward-zone:\n  name: \".\"\n  forward-addr: 127.0.0.1@{zone.port}\n")
    (tmp / "opendkim.conf").write_text(
        f"Mode v\nSyslog no\nResolverConfiguration {tmp / 'unbound.conf'}\n")
    out = subprocess.run([opendkim, "-x", str(tmp / "opendkim.conf"), "-t", str(eml), "-vvv"],
                         capture_output=True, text=True, timeout=60, check=False)
    return out.stdout + out.stderr


def test_opendkim_verifies_what_we_sign(elemta_server, zone: ZoneServer, tmp_path: Path) -> None:
    keys = [{"domain": "example.org", "selector": sel,
             "key_file": str(publish_key(zone, tmp_path, sel, sel))}
            for sel in ("rsa", "ed25519")]  # dual signing: one RSA and one Ed25519 signature
    srv: ServerProcess = elemta_server(
        plugins={"enabled": ["dkim_sign"]}, dns=dns_section(zone),
        server={"relay_networks": ["127.0.0.0/8"]}, authentication={"dkim_keys": keys})
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=20) as s:
        s.sendmail("alice@example.org", ["bob@localhost"], MSG)
    [path] = srv.wait_delivered("bob@localhost", 1, timeout=15)
    data = path.read_bytes()
    assert b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org" in data
    report = opendkim_verify(zone, tmp_path, path)
    assert "verification (s=rsa, d=example.org, 2048-bit key) succeeded" in report, report
    for alg, sel in (("rsa-sha256", "rsa"), ("ed25519-sha256", "ed25519")):
        assert re.search(rf"dkim=pass .*header\.a={alg} header\.s={sel} ", report), report

    tampered = tmp_path / "tampered.eml"
    tampered.write_bytes(data.replace(b"one DKIM implementation", b"one DKIM forger"))
    assert opendkim_verify(zone, tmp_path, tampered).count("dkim=fail") == 2


def test_we_verify_what_opendkim_signs(elemta_server, zone: ZoneServer, tmp_path: Path) -> None:
    testmsg = require_binary("opendkim-testmsg", "/usr/sbin/opendkim-testmsg")
    key = publish_key(zone, tmp_path, "od", "rsa")
    signed = subprocess.run([testmsg, "-C", "-d", "example.org", "-s", "od", "-k", str(key)],
                            input=MSG, capture_output=True, timeout=60, check=True).stdout
    assert signed.startswith(b"DKIM-Signature:")
    eml = tmp_path / "opendkim.eml"
    eml.write_bytes(signed)
    srv: ServerProcess = elemta_server(plugins={"enabled": ["dkim"]}, dns=dns_section(zone))
    report = json.loads(srv.cli("auth", "verify", str(eml)).stdout)
    assert [s["result"] for s in report["dkim"]] == ["pass"], report
    assert report["dkim"][0]["selector"] == "od"

    with smtplib.SMTP("127.0.0.1", srv.port, timeout=20) as s:
        s.sendmail("alice@example.org", ["bob@localhost"], signed)
    [path] = srv.wait_delivered("bob@localhost", 1, timeout=15)
    assert b"dkim=pass header.d=example.org" in path.read_bytes().replace(b"\r\n ", b" ")
