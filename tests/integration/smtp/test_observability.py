"""Prometheus metrics, structured logs with queue ids, and the generated TLS certificate."""

from __future__ import annotations

import json
import smtplib
import ssl
import time
import urllib.request

from tests.support.ports import free_port
from tests.support.server import ServerProcess, with_test_plugins_env

MSG = b"Subject: m\r\n\r\nbody\r\n"


def test_metrics_endpoint_and_json_logs(elemta_server) -> None:
    mport = free_port()
    srv: ServerProcess = elemta_server(
        env=with_test_plugins_env(), metrics={"listen": f"127.0.0.1:{mport}"},
        logging={"format": "json"}, plugins={"enabled": ["t_first"]},
        testplugins={"behaviors": {"t_first.unknown_command": "reject:502:5.5.1:nope"}})
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
        assert s.sendmail("a@example.org", ["bob@localhost"], MSG) == {}
        assert s.docmd("XFOO") == (502, b"5.5.1 nope")
    text = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=10).read().decode()
    assert 'elemta_connections_total{outcome="accepted"} ' in text  # + the start-up probe
    assert 'elemta_messages_total{outcome="accepted"} 1.0' in text
    assert 'elemta_hook_duration_seconds_count{hook="rcpt_to",plugin="t_first"}' in text
    assert ('elemta_hook_actions_total{action="reject",hook="unknown_command",plugin="t_first"} 1.0'
            in text)
    assert len(srv.wait_delivered("bob@localhost")) == 1
    time.sleep(0.2)  # the delivery log line follows the Maildir rename
    lines = [json.loads(ln) for ln in srv.log().splitlines() if ln.startswith("{")]
    assert lines and all({"ts", "level", "logger", "msg"} <= set(ln) for ln in lines)
    queued = [ln for ln in lines if "queued from=<a@example.org>" in ln["msg"]]
    assert len(queued) == 1
    qid = queued[0]["msg"].split()[0]
    assert any(qid in ln["msg"] and "delivered" in ln["msg"] for ln in lines)


def test_self_signed_certificate_is_generated_on_first_run(elemta_server) -> None:
    srv: ServerProcess = elemta_server()
    cert = srv.state_dir / "tls" / "cert.pem"
    key = srv.state_dir / "tls" / "key.pem"
    assert cert.exists() and key.exists()
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.check_hostname = False
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
        s.starttls(context=ctx)  # verifies against the generated certificate
        assert s.sock.version() in ("TLSv1.2", "TLSv1.3")
