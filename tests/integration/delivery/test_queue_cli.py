"""`elemta queue list/show/flush/hold/release/delete`, live against a running daemon."""

from __future__ import annotations

import json
import time
from typing import Any

from elemta_core.admin.client import call
from tests.integration.delivery.conftest import RELAY, send
from tests.support.ports import free_port
from tests.support.server import ServerProcess
from tests.support.smtp_sink import Sink, SinkHandler


def _listing(srv: ServerProcess) -> dict[str, Any]:
    return json.loads(srv.cli("queue", "list", "--json").stdout)  # type: ignore[no-any-return]


def _wait_state(srv: ServerProcess, qid: str, state: str, timeout: float = 10) -> dict[str, Any]:
    """Poll the admin socket directly (the CLI itself is what the tests exercise)."""
    deadline = time.monotonic() + timeout
    while True:
        listing = call(srv.state_dir / "admin.sock", "queue.list")
        rows = {m["id"]: m for m in listing["messages"]}
        if qid in rows and rows[qid]["state"] == state:
            return rows[qid]
        assert time.monotonic() < deadline, f"{qid} never reached {state}: {rows}"
        time.sleep(0.1)


def test_hold_and_release(elemta_server) -> None:
    port = free_port()  # the destination is down at first
    srv: ServerProcess = elemta_server(server=RELAY, queue={"retry_schedule": ["1h"]},
                                       delivery={"transports": {
                                           "remote.test": f"smtp:[127.0.0.1]:{port}"}})
    qid = send(srv.port, "alice@localhost", ["bob@remote.test"], "held one")
    row = _wait_state(srv, qid, "deferred")
    assert row["recipients"][0]["state"] == "pending" and row["attempts"] == 1
    assert "Connection refused" in row["last_error"] or "connect" in row["last_error"].lower()
    out = srv.cli("queue", "list").stdout
    assert qid in out and "deferred" in out

    assert srv.cli("queue", "hold", qid).stdout.strip() == f"{qid}: held"
    _wait_state(srv, qid, "hold")
    assert srv.cli("queue", "flush").stdout.strip() == "flushed 0 message(s)"
    shown = json.loads(srv.cli("queue", "show", qid, "--json").stdout)
    assert shown["state"] == "hold" and ["Subject", "held one"] in shown["headers"]
    assert "Subject: held one" in srv.cli("queue", "show", qid).stdout

    with Sink(SinkHandler(), port=port) as sink:
        time.sleep(0.5)
        assert sink.messages == []  # held: not delivered even though the server is back
        assert srv.cli("queue", "release", qid).stdout.strip() == f"{qid}: released"
        (got,) = sink.wait(1)
    assert got.rcpt_tos == ["bob@remote.test"]
    assert _listing(srv)["messages"] == []


def test_flush_and_delete(elemta_server) -> None:
    port = free_port()
    srv: ServerProcess = elemta_server(server=RELAY, queue={"retry_schedule": ["1h"]},
                                       delivery={"transports": {
                                           "remote.test": f"smtp:[127.0.0.1]:{port}"}})
    keep = send(srv.port, "alice@localhost", ["bob@remote.test"], "flushed")
    drop = send(srv.port, "alice@localhost", ["carol@remote.test"], "deleted")
    _wait_state(srv, keep, "deferred")
    _wait_state(srv, drop, "deferred")
    assert srv.cli("queue", "delete", drop).stdout.strip() == f"{drop}: deleted"
    with Sink(SinkHandler(), port=port) as sink:
        assert srv.cli("queue", "flush").stdout.strip() == "flushed 1 message(s)"
        (got,) = sink.wait(1)
    assert got.rcpt_tos == ["bob@remote.test"]
    assert _listing(srv)["counts"] == {"active": 0, "deferred": 0, "hold": 0, "failed": 0}
    assert not srv.wait_delivered("alice@localhost", timeout=0.5)  # delete sends no bounce


def test_bad_input_gets_a_clear_error(elemta_server) -> None:
    srv: ServerProcess = elemta_server()
    r = srv.cli("queue", "hold", "not-an-id", check=False)
    assert r.returncode == 1 and "is not a queue id" in r.stderr
    r = srv.cli("queue", "release", "0123456789ABCDEF", check=False)
    assert r.returncode == 1 and "no message 0123456789ABCDEF on hold" in r.stderr
    r = srv.cli("queue", "show", "0123456789ABCDEF", check=False)
    assert r.returncode == 1 and "no message" in r.stderr
    srv.stop()
    r = srv.cli("queue", "list", check=False)
    assert r.returncode == 3 and "not running" in r.stderr
