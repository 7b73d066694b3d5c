"""No open relay; AUTH only after TLS, against a users file of salted hashes."""

from __future__ import annotations

import asyncio
import shutil
import smtplib
import ssl
import subprocess
from pathlib import Path

import aiosmtplib
import pytest

from elemta_core.smtp.users import hash_password
from tests.support.server import ServerProcess
from tests.support.services import require_binary

MSG = b"Subject: relay\r\nFrom: a@example.org\r\n\r\nbody\r\n"


def tls_ctx() -> ssl.SSLContext:
    return ssl._create_unverified_context()


def test_relay_refused_for_unknown_client(elemta_server) -> None:
    srv: ServerProcess = elemta_server()
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
        s.ehlo("c.test")
        s.mail("a@example.org")
        code, msg = s.rcpt("someone@remote.example")
        assert code == 554
        assert msg == b"5.7.1 <someone@remote.example>: Relay access denied"
        # local mail is still fine in the same transaction
        assert s.rcpt("bob@localhost")[0] == 250


def test_relay_allowed_from_relay_networks(elemta_server) -> None:
    srv: ServerProcess = elemta_server(server={"relay_networks": ["127.0.0.0/8"]})
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
        assert s.sendmail("a@example.org", ["someone@remote.example"], MSG) == {}
    out = srv.cli("status")
    assert '"active"' in out.stdout or '"deferred"' in out.stdout


@pytest.fixture
def auth_server(elemta_server, tmp_path: Path) -> ServerProcess:
    users = tmp_path / "users"
    users.write_text(f"alice:{hash_password('s3cret')}\n")
    return elemta_server(server={"users_file": str(users)})


def test_auth_not_offered_before_tls(auth_server: ServerProcess) -> None:
    with smtplib.SMTP("127.0.0.1", auth_server.port, timeout=10) as s:
        code, caps = s.ehlo("c.test")
        assert b"AUTH" not in caps and b"STARTTLS" in caps
        code, msg = s.docmd("AUTH PLAIN AGFsaWNlAHMzY3JldA==")
        assert code == 538


def test_auth_plain_and_login_over_tls_allow_relay(auth_server: ServerProcess) -> None:
    for mech in ("PLAIN", "LOGIN"):
        with smtplib.SMTP("127.0.0.1", auth_server.port, timeout=10) as s:
            s.starttls(context=tls_ctx())
            code, caps = s.ehlo("c.test")
            assert b"AUTH LOGIN PLAIN" in caps
            authobj = getattr(s, f"auth_{mech.lower()}")
            s.user, s.password = "alice", "wrong"
            with pytest.raises(smtplib.SMTPAuthenticationError) as e:
                s.auth(mech, authobj, initial_response_ok=mech == "PLAIN")
            assert e.value.smtp_code == 535
            s.password = "s3cret"
            code, _ = s.auth(mech, authobj, initial_response_ok=mech == "PLAIN")
            assert code == 235
            assert s.sendmail("alice@localhost", ["x@remote.example"], MSG) == {}


async def test_aiosmtplib_starttls_auth_session(auth_server: ServerProcess) -> None:
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=auth_server.port, timeout=10,
                             start_tls=False, tls_context=tls_ctx())
    await client.connect()
    await client.starttls()
    await client.login("alice", "s3cret")
    errors, resp = await client.sendmail("alice@localhost", ["bob@localhost"], MSG)
    assert errors == {} and "queued as" in resp
    await client.quit()
    assert len(await asyncio.to_thread(auth_server.wait_delivered, "bob@localhost")) == 1


def test_swaks_tls_auth_session(auth_server: ServerProcess) -> None:
    swaks = require_binary("swaks")
    out = subprocess.run(
        [swaks, "--server", "127.0.0.1", "--port", str(auth_server.port), "--tls",
         "--auth", "PLAIN", "--auth-user", "alice", "--auth-password", "s3cret",
         "--from", "alice@localhost", "--to", "carol@localhost", "--helo", "swaks.test",
         "--header", "Subject: from swaks"],
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "235 2.7.0 Authentication successful" in out.stdout
    msgs = auth_server.wait_delivered("carol@localhost")
    assert len(msgs) == 1
    data = msgs[0].read_bytes()
    assert b"with ESMTPSA" in data and b"Subject: from swaks" in data
