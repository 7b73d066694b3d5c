"""SPF, DKIM, DMARC and ARC on a real `elemta serve`, its DNS a real server on loopback."""

from __future__ import annotations

import smtplib
from pathlib import Path

import pytest

from builtin_plugins.auth.dkim_sign import Signer, header_list, sign_message
from builtin_plugins.auth.keys import KeyType, generate
from elemta_core.hooks.types import HeaderChange, HeaderOp
from elemta_core.message.message import Message
from tests.integration.auth.conftest import dns_section
from tests.support.dns_server import ZoneServer
from tests.support.server import ServerProcess

KEY = generate(KeyType.RSA, 1024)[1]
AUTH = ["spf", "dkim", "dmarc", "arc"]


def message(from_: str, body: str = "Hello Bob\r\n", extra: str = "") -> bytes:
    return (f"{extra}From: {from_}\r\nTo: bob@localhost\r\nSubject: test\r\n"
            f"Message-ID: <1@example>\r\n\r\n{body}").encode()


def signed(raw: bytes, domain: str = "example.org") -> bytes:
    msg = Message(raw)
    [value] = sign_message(msg, [Signer(domain, "s1", KEY)],
                           header_list(msg, ["from", "to", "subject"], ["from"]),
                           "relaxed/relaxed")
    return msg.with_changes([HeaderChange(HeaderOp.ADD, "DKIM-Signature", value)]).raw


def setup_zone(zone: ZoneServer) -> None:
    zone.txt("example.org", "v=spf1 ip4:127.0.0.0/8 -all")
    zone.txt("s1._domainkey.example.org", KEY.txt_record())
    zone.txt("_dmarc.example.org", "v=DMARC1; p=reject")
    zone.txt("fail.test", "v=spf1 ip4:192.0.2.0/24 -all")
    zone.txt("_dmarc.fail.test", "v=DMARC1; p=reject")
    zone.txt("quar.test", "v=spf1 -all")
    zone.txt("_dmarc.quar.test", "v=DMARC1; p=quarantine")


def server(factory, zone: ZoneServer, **auth: object) -> ServerProcess:
    srv: ServerProcess = factory(plugins={"enabled": AUTH}, dns=dns_section(zone),
                                 authentication={"authserv_id": "mx.test", **auth})
    return srv


def send(srv: ServerProcess, mail_from: str, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=20) as s:
        s.ehlo("client.example.org")
        s.sendmail(mail_from, ["bob@localhost"], raw)


def delivered(srv: ServerProcess) -> bytes:
    [path] = srv.wait_delivered("bob@localhost", 1, timeout=15)
    return Path(path).read_bytes()


def test_pass_everywhere_and_forged_results_removed(elemta_server, zone: ZoneServer) -> None:
    setup_zone(zone)
    srv = server(elemta_server, zone, dmarc_policy="reject")
    forged = ("Authentication-Results: mx.test; dkim=pass header.d=bank.test\r\n"
              "Authentication-Results: upstream.test; spf=pass smtp.mailfrom=x.test\r\n")
    send(srv, "alice@example.org", signed(message("alice@example.org", extra=forged)))
    data = delivered(srv)
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    ours = [ln for ln in head.replace("\r\n ", " ").split("\r\n")
            if ln.startswith("Authentication-Results: mx.test;")]
    assert len(ours) == 1, head
    ar = ours[0]
    assert "spf=pass" in ar and "smtp.mailfrom=alice@example.org" in ar
    assert "dkim=pass" in ar and "header.d=example.org" in ar
    assert "dmarc=pass" in ar and "header.from=example.org" in ar
    assert "arc=none" in ar
    assert "bank.test" not in head and "upstream.test; spf=pass" in head
    assert "Received-SPF: Pass (mx.test: domain of example.org designates 127.0.0.1" in head


def test_dmarc_reject_is_honoured_when_the_cap_allows(elemta_server, zone: ZoneServer) -> None:
    setup_zone(zone)
    srv = server(elemta_server, zone, dmarc_policy="reject")
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=20) as s:
        s.ehlo("client.example.org")
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail("ceo@fail.test", ["bob@localhost"], message("ceo@fail.test"))
    assert e.value.smtp_code == 550 and b"5.7.1" in e.value.smtp_error
    assert b"DMARC" in e.value.smtp_error
    assert srv.maildir_messages("bob@localhost") == []


def test_dmarc_cap_quarantine_and_none(elemta_server, zone: ZoneServer) -> None:
    setup_zone(zone)
    capped = server(elemta_server, zone, dmarc_policy="quarantine")
    send(capped, "ceo@fail.test", message("ceo@fail.test"))  # p=reject, capped: quarantined
    qdir = capped.state_dir / "quarantine"
    assert any(p.is_file() for p in qdir.rglob("*")), capped.log()
    assert capped.maildir_messages("bob@localhost") == []

    report_only = server(elemta_server, zone)  # dmarc_policy defaults to none
    send(report_only, "ceo@quar.test", message("ceo@quar.test"))
    ar = delivered(report_only)
    assert b"dmarc=fail (p=quarantine sp=quarantine pct=100 dis=none) header.from=quar.test" \
        in ar.replace(b"\r\n ", b" ")
    assert b"spf=fail" in ar


def test_spf_action_rejects_at_mail_from(elemta_server, zone: ZoneServer) -> None:
    setup_zone(zone)
    srv = server(elemta_server, zone, spf_actions={"fail": "reject", "temperror": "tempfail"})
    zone.servfail.add("broken.test")
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=20) as s:
        s.ehlo("client.example.org")
        code, text = s.mail("ceo@fail.test")
        assert (code, text[:6]) == (550, b"5.7.23"), text
        code, text = s.mail("x@broken.test")
        assert (code, text[:6]) == (451, b"4.7.24"), text
        code, _ = s.mail("alice@example.org")
        assert code == 250


def test_no_dns_still_starts_and_accepts(elemta_server) -> None:
    # The defaults (no [plugins] enabled list: spf, dkim, dmarc) with a DNS that never answers.
    srv: ServerProcess = elemta_server(start=False,
                                       dns={"nameservers": ["127.0.0.1:9"], "timeout": 0.3,
                                            "lifetime": 0.5})
    del srv.config["plugins"]
    srv.start()
    send(srv, "alice@example.org", message("alice@example.org"))
    data = delivered(srv).replace(b"\r\n ", b" ")
    assert b"Authentication-Results: mx.test; spf=temperror" in data
    assert b"dkim=none" in data and b"dmarc=temperror" in data
    plugins = srv.cli("plugin", "list", "--json").stdout
    for name in ("spf", "dkim", "dmarc"):
        assert f'"name": "{name}"' in plugins


def test_hostile_auth_headers_neither_crash_nor_hang(elemta_server, zone: ZoneServer) -> None:
    import time

    setup_zone(zone)
    zone.silent.add("slow._domainkey.example.org")
    srv = server(elemta_server, zone)
    junk = "".join(
        ["DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=slow; h=from; bh=AA==; b=AA==\r\n"]
        + [f"DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=s{i}; h=from; bh=AA==; b=AA==\r\n"
           for i in range(40)]
        + ["DKIM-Signature: \x01\x02 garbage ;;; ===\r\n",
           "ARC-Seal: i=999999999999; cv=pass\r\n", "ARC-Seal: i=1; i=2\r\n",
           "Authentication-Results: mx.test (" + "(" * 500 + "\r\n",
           "From: a@example.org, b@example.net\r\n"])
    t0 = time.monotonic()
    send(srv, "alice@example.org", message("alice@example.org", extra=junk))
    assert time.monotonic() - t0 < 20
    data = delivered(srv).replace(b"\r\n ", b" ")
    ar = next(ln for ln in data.split(b"\r\n") if ln.startswith(b"Authentication-Results: mx.test;"))
    assert b"dkim=temperror" in ar and b"dkim=permerror" in ar  # the silent key: a timeout
    assert b"dmarc=permerror" in ar and b"arc=fail" in ar
    assert ar.count(b"dkim=") == 10  # dkim_max_signatures bounds the work


def test_reload_keeps_checking_with_the_shared_resolver(elemta_server, zone: ZoneServer) -> None:
    import signal
    import time

    setup_zone(zone)
    srv = server(elemta_server, zone)
    srv.config["authentication"]["dmarc_policy"] = "reject"
    srv.write_config()
    srv.signal(signal.SIGHUP)
    deadline = time.monotonic() + 15
    while "configuration reloaded" not in srv.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "configuration reloaded" in srv.log()
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=20) as s:
        s.ehlo("client.example.org")
        code, _ = s.mail("ceo@fail.test")
        assert code == 250
        s.rcpt("bob@localhost")
        code, text = s.data(message("ceo@fail.test"))
    assert code == 550 and b"DMARC" in text  # the reloaded cap is in force
    send(srv, "alice@example.org", signed(message("alice@example.org")))
    assert b"dkim=pass" in delivered(srv)
