"""Several worker processes on one port under a supervisor."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import time
import urllib.request

from tests.support.ports import free_port
from tests.support.server import ServerProcess, with_test_plugins_env


def status(srv: ServerProcess) -> dict:
    return json.loads(srv.cli("status").stdout)


def wait_workers_ready(srv: ServerProcess, n: int, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        st = status(srv)
        if len(st["workers"]) == n and all(w["state"] == "ready" for w in st["workers"]):
            return st
        if time.monotonic() > deadline:
            raise AssertionError(st)
        time.sleep(0.2)


def test_two_workers_share_the_port_queue_and_admin_view(elemta_server) -> None:
    mport = free_port()
    srv: ServerProcess = elemta_server(env=with_test_plugins_env(), server={"workers": 2},
                                       metrics={"listen": f"127.0.0.1:{mport}"},
                                       plugins={"enabled": ["t_first"]})
    st = wait_workers_ready(srv, 2)
    pids = {w["pid"] for w in st["workers"]}
    assert len(pids) == 2
    # many short connections: the kernel spreads them over both workers
    for i in range(40):
        with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
            s.sendmail("a@example.org", [f"w{i}@localhost"], b"Subject: w\r\n\r\nbody\r\n")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not all(srv.maildir_messages(f"w{i}@localhost")
                                                   for i in range(40)):
        time.sleep(0.1)
    assert all(len(srv.maildir_messages(f"w{i}@localhost")) == 1 for i in range(40))
    plugins = json.loads(srv.cli("plugin", "list", "--json").stdout)["plugins"]
    assert sorted((p["name"], p["worker"]) for p in plugins) == [("t_first", 0), ("t_first", 1)]
    text = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=10).read().decode()
    accepted = [ln for ln in text.splitlines()
                if ln.startswith('elemta_messages_total{outcome="accepted"')]
    assert len(accepted) == 2  # one per worker
    assert sum(float(ln.rsplit(" ", 1)[1]) for ln in accepted) == 40


def test_a_killed_worker_is_restarted_and_sigterm_stops_all(elemta_server) -> None:
    srv: ServerProcess = elemta_server(server={"workers": 2})
    st = wait_workers_ready(srv, 2)
    victim = st["workers"][1]["pid"]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while True:
        st = status(srv)
        w = st["workers"][1]
        if w["restarts"] == 1 and w["state"] == "ready" and w["pid"] != victim:
            break
        assert time.monotonic() < deadline, st
        time.sleep(0.2)
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
        assert s.sendmail("a@example.org", ["bob@localhost"], b"Subject: x\r\n\r\ny\r\n") == {}
    pids = [w["pid"] for w in st["workers"]]
    assert srv.stop() == 0
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        raise AssertionError(f"worker {pid} survived the supervisor")
