"""`elemta auth spf`, `elemta auth verify` and `elemta dkim keygen`, run as an operator would."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.support.dns_server import ZoneServer
from tests.support.server import ELEMTA, REPO


def elemta(*args: str, stdin: bytes | None = None, cwd: Path | None = None
           ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([*ELEMTA, *args], input=stdin.decode() if stdin else None, cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=60, check=False)


def test_auth_spf(zone: ZoneServer) -> None:
    zone.txt("example.org", "v=spf1 ip4:192.0.2.0/24 -all")
    zone.txt("helo.example.org", "v=spf1 -all")
    out = elemta("auth", "spf", "--ip", "192.0.2.7", "--mail-from", "a@example.org",
                 "--nameserver", zone.address)
    report = json.loads(out.stdout)
    assert report["result"] == "pass" and report["identity"] == "mailfrom"
    assert report["received_spf"].startswith("Pass (")
    text = elemta("auth", "spf", "--ip", "192.0.2.7", "--helo", "helo.example.org",
                  "--nameserver", zone.address, "--text")
    assert text.returncode == 0 and text.stdout.startswith("spf=fail (helo helo.example.org)")


def test_auth_spf_bad_input() -> None:
    assert elemta("auth", "spf", "--ip", "192.0.2.7").returncode == 2
    bad = elemta("auth", "spf", "--ip", "192.0.2.7", "--helo", "x.test", "--nameserver",
                 "dns.example")
    assert bad.returncode == 2 and "not an IP address" in bad.stderr
    junk = elemta("auth", "spf", "--ip", "nonsense", "--helo", "x.test", "--nameserver",
                  "127.0.0.1:9")
    assert junk.returncode == 0 and json.loads(junk.stdout)["result"] == "permerror"


def test_auth_verify(zone: ZoneServer, tmp_path: Path) -> None:
    out = elemta("dkim", "keygen", "--domain", "example.org", "--selector", "s1", "--type",
                 "ed25519", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    zone.txt("s1._domainkey.example.org", "".join(out.stdout.split('"')[1::2]))
    zone.txt("example.org", "v=spf1 ip4:192.0.2.0/24 -all")
    zone.txt("_dmarc.example.org", "v=DMARC1; p=reject; adkim=s")
    msg = (b"From: a@example.org\r\nTo: b@example.net\r\nSubject: cli\r\n\r\nhi\r\n")
    from builtin_plugins.auth.dkim_sign import Signer, header_list, sign_message
    from builtin_plugins.auth.keys import load_key
    from elemta_core.message.message import Message

    m = Message(msg)
    [sig] = sign_message(m, [Signer("example.org", "s1", load_key(tmp_path /
                                                                  "s1.example.org.key"))],
                         header_list(m, ["from", "subject"], ["from"]), "relaxed/relaxed")
    eml = tmp_path / "m.eml"
    eml.write_bytes(b"DKIM-Signature: " + sig.encode() + b"\r\n" + msg.replace(b"\r\n", b"\n")
                    .replace(b"\n", b"\r\n"))
    report = json.loads(elemta("auth", "verify", str(eml), "--ip", "198.51.100.1",
                               "--mail-from", "a@example.org", "--nameserver",
                               zone.address).stdout)
    assert report["spf"]["result"] == "fail"
    assert [s["result"] for s in report["dkim"]] == ["pass"]
    assert report["dmarc"]["result"] == "pass" and report["dmarc"]["dkim_aligned"]
    assert report["arc"]["cv"] == "none"
    assert report["authentication_results"].startswith("Authentication-Results: localhost; "
                                                       "spf=fail")
    text = elemta("auth", "verify", "-", "--text", "--nameserver", zone.address,
                  stdin=eml.read_bytes().replace(b"\r\n", b"\n"))
    assert "dkim:  pass d=example.org s=s1" in text.stdout, text.stderr
    assert "dmarc: pass (From example.org, policy none)" in text.stdout
    missing = elemta("auth", "verify", str(tmp_path / "nope.eml"))
    assert missing.returncode == 2


def test_dkim_keygen(tmp_path: Path) -> None:
    out = elemta("dkim", "keygen", "--domain", "Example.ORG.", "--selector", "k1",
                 "--out", str(tmp_path / "k1.pem"))
    assert out.returncode == 0
    assert out.stdout.startswith('k1._domainkey.example.org. IN TXT ( "v=DKIM1; k=rsa; p=')
    assert (tmp_path / "k1.pem").read_text().startswith("-----BEGIN RSA PRIVATE KEY-----")
    again = elemta("dkim", "keygen", "--domain", "example.org", "--selector", "k1",
                   "--out", str(tmp_path / "k1.pem"))
    assert again.returncode == 2 and "exists" in again.stderr
    assert elemta("dkim", "keygen", "--domain", "nodots", "--selector", "k").returncode == 2
    assert elemta("dkim", "keygen", "--domain", "a.test", "--selector", "a;b").returncode == 2
