"""Plugin ordering, every action, timeouts and failure policies, through a real server.

The test plugins (t_first/t_second/t_third, priorities 10/20/30) are found through a real
``elemta.plugins`` entry point; their behaviour per hook comes from ``[testplugins]``.
"""

from __future__ import annotations

import json
import smtplib
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import ServerProcess, with_test_plugins_env

MSG = b"Subject: test\r\nFrom: a@example.org\r\n\r\nbody\r\n"
ALL = ["t_third", "t_first", "t_second"]


@pytest.fixture
def make(elemta_server, tmp_path: Path):
    log = tmp_path / "hooks.jsonl"

    def start(behaviors: dict[str, str] | None = None, options: dict[str, Any] | None = None,
              enabled: list[str] = ALL) -> ServerProcess:
        plugins: dict[str, Any] = {"enabled": enabled}
        if options:
            plugins["options"] = options
        srv = elemta_server(env=with_test_plugins_env(), plugins=plugins,
                            testplugins={"log_file": str(log), "behaviors": behaviors or {}})
        srv.hook_log = log  # type: ignore[attr-defined]
        return srv
    return start


def calls(srv: ServerProcess, hook: str) -> list[dict[str, Any]]:
    log: Path = srv.hook_log  # type: ignore[attr-defined]
    if not log.exists():
        return []
    return [c for c in map(json.loads, log.read_text().splitlines()) if c["hook"] == hook]


def rcpt_reply(srv: ServerProcess, rcpt: str = "bob@localhost") -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
        s.ehlo("c.test")
        s.mail("a@example.org")
        return s.rcpt(rcpt)


def test_priority_order_and_override(make) -> None:
    srv = make()
    assert rcpt_reply(srv)[0] == 250
    assert [c["plugin"] for c in calls(srv, "rcpt_to")] == ["t_first", "t_second", "t_third"]
    srv.stop()
    srv2 = make(options={"t_third": {"priority": 5}})
    srv2.hook_log.unlink()  # type: ignore[attr-defined]
    assert rcpt_reply(srv2)[0] == 250
    assert [c["plugin"] for c in calls(srv2, "rcpt_to")] == ["t_third", "t_first", "t_second"]


def test_every_hook_of_a_session_is_called(make) -> None:
    srv = make(enabled=["t_first"])
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
        s.ehlo("c.test")
        s.docmd("XFOO")
        s.sendmail("a@example.org", ["bob@localhost"], MSG)
    srv.wait_delivered("bob@localhost")
    time.sleep(0.3)
    for hook in ("connect", "helo", "unknown_command", "mail_from", "rcpt_to", "data_start",
                 "message", "queued", "after_queue", "delivery_attempt", "delivery_result",
                 "disconnect"):
        assert calls(srv, hook), f"{hook} not called"


@pytest.mark.parametrize("spec,code,text", [
    ("reject:550:5.7.1:no thanks", 550, b"5.7.1 no thanks"),
    ("tempfail:451:4.7.1:later", 451, b"4.7.1 later"),
    ("reject", 550, b"5.7.1 Rejected by policy"),
    # a plugin cannot turn a rejection into success or pick a mismatched enhanced code
    ("reject:250:2.0.0:sneaky", 550, b"5.7.1 sneaky"),
])
def test_rcpt_actions_and_replies(make, spec: str, code: int, text: bytes) -> None:
    srv = make({"t_second.rcpt_to": spec})
    assert rcpt_reply(srv) == (code, text)
    assert [c["plugin"] for c in calls(srv, "rcpt_to")] == ["t_first", "t_second"]


def test_accept_stops_the_chain(make) -> None:
    srv = make({"t_first.rcpt_to": "accept", "t_second.rcpt_to": "reject"})
    assert rcpt_reply(srv)[0] == 250
    assert [c["plugin"] for c in calls(srv, "rcpt_to")] == ["t_first"]


def test_connect_reject_closes_with_reply(make) -> None:
    srv = make({"t_first.connect": "reject:554:5.7.1:go away"})
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    assert s.recv(1024).startswith(b"554 5.7.1 go away")
    assert s.recv(1024) == b""


def test_discard_acknowledges_but_drops(make) -> None:
    srv = make({"t_second.message": "discard"})
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
        assert s.sendmail("a@example.org", ["bob@localhost"], MSG) == {}
    time.sleep(0.5)
    assert srv.maildir_messages("bob@localhost") == []


def test_quarantine_stores_with_reason(make) -> None:
    srv = make({"t_third.message": "quarantine"})
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
        assert s.sendmail("a@example.org", ["bob@localhost"], MSG) == {}
    time.sleep(0.3)
    assert srv.maildir_messages("bob@localhost") == []
    stored = list((srv.state_dir / "quarantine").iterdir())
    assert len(stored) == 1
    assert b"t_third said quarantine" in stored[0].read_bytes()


def test_tags_and_header_changes_flow_between_plugins(make) -> None:
    srv = make({"t_first.mail_from": "tag:seen.by=first", "t_second.message": "header:X-Test=yes",
                "t_third.message": "remove_header:X-Remove-Me"})
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
        s.sendmail("a@example.org", ["bob@localhost"], b"X-Remove-Me: 1\r\n" + MSG)
    [rc] = [c for c in calls(srv, "rcpt_to") if c["plugin"] == "t_third"]
    assert rc["tags"] == {"seen.by": "first"}
    [msg] = srv.wait_delivered("bob@localhost")
    data = msg.read_bytes()
    assert b"X-Test: yes\r\n" in data and b"X-Remove-Me" not in data


@pytest.mark.parametrize("policy,code", [(None, 451), ("tempfail", 451), ("continue", 250),
                                         ("reject", 554)])
@pytest.mark.parametrize("fault", ["sleep:3", "raise", "badresult"])
def test_failure_policies(make, policy: str | None, code: int, fault: str) -> None:
    opts = {"t_first": {"failure_policy": policy}} if policy else None
    srv = make({"t_first.rcpt_to": fault}, options=opts)
    t0 = time.monotonic()
    got = rcpt_reply(srv)
    assert got[0] == code
    if code == 451:
        assert got[1].startswith(b"4.3.0")
    assert time.monotonic() - t0 < 2.5  # the 0.5 s timeout, not the plugin's 3 s sleep
    time.sleep(0.3)
    failed = calls(srv, "plugin_failed")
    # every plugin observes the security event, which names the plugin that failed and why
    assert {c["plugin"] for c in failed} == {"t_first", "t_second", "t_third"}
    assert {c["event_plugin"] for c in failed} == {"t_first"}
    why = {"sleep:3": "timed out after 0.5s", "raise": "RuntimeError: test plugin failure",
           "badresult": "TypeError: hook returned str"}[fault]
    assert all(why in c["detail"] for c in failed)


def test_plugin_list_live_and_stopped(make) -> None:
    srv = make()
    rcpt_reply(srv)
    live = json.loads(srv.cli("plugin", "list", "--json").stdout)["plugins"]
    by = {p["name"]: p for p in live}
    assert set(by) == set(ALL)
    assert by["t_first"]["kind"] == "builtin" and by["t_first"]["state"] == "ready"
    assert by["t_second"]["priority"] == 20 and by["t_second"]["failure_policy"] == "tempfail"
    assert "rcpt_to" in by["t_third"]["hooks"]
    for key in ("version", "pid", "restarts", "last_error"):
        assert key in by["t_first"]
    srv.stop()
    stopped = json.loads(srv.cli("plugin", "list", "--json").stdout)["plugins"]
    assert {p["name"]: p["state"] for p in stopped} == {n: "stopped" for n in ALL}
