"""The quarantine store and its admin commands: list, show, release into the spool, delete."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from elemta_core.admin.server import AdminServer
from elemta_core.config.model import SyncMode
from elemta_core.queue.envelope import Envelope, QueueState, Recipient, new_queue_id
from elemta_core.queue.quarantine import NotQuarantined, Quarantine, check_queue_id
from elemta_core.queue.quarantine_admin import register_quarantine_commands
from elemta_core.queue.spool import Spool

DATA = b"Subject: caught\r\nX-Spam-Status: Yes\r\n\r\nbody\r\n"


class Runner:
    """Stands in for the queue runner: remembers what it was asked to deliver."""

    def __init__(self) -> None:
        self.submitted: list[str] = []

    def submit(self, queue_id: str) -> None:
        self.submitted.append(queue_id)


def store(q: Quarantine, reason: str = "virus Test.Virus", plugin: str = "antivirus") -> str:
    env = Envelope(new_queue_id(), "a@example.org", [Recipient("b@localhost")],
                   peer_ip="192.0.2.1", helo="client.test", tags={"virus.name": "Test.Virus"})
    q.store(env, DATA, reason, plugin)
    return env.queue_id


def test_store_list_read_delete(tmp_path: Path) -> None:
    q = Quarantine(tmp_path / "quarantine")
    assert q.entries() == []
    qid = store(q)
    (q.root / "garbage").write_bytes(b"not an entry")
    [e] = q.entries()
    assert (e.queue_id, e.plugin, e.reason, e.size) == (qid, "antivirus", "virus Test.Virus",
                                                        len(DATA))
    assert e.recipients == ["b@localhost"] and e.tags == {"virus.name": "Test.Virus"}
    assert e.peer_ip == "192.0.2.1"
    env, data = q.read(qid)
    assert data == DATA and env.quarantine_reason == "antivirus: virus Test.Virus"
    q.delete(qid)
    with pytest.raises(NotQuarantined):
        q.read(qid)
    with pytest.raises(NotQuarantined):
        q.delete(qid)


@pytest.mark.parametrize("bad", ["../spool/active/x", ".hidden", "", "a/b", "x" * 65, None, 5])
def test_queue_ids_that_could_name_other_files_are_refused(tmp_path: Path, bad: object) -> None:
    with pytest.raises(ValueError):
        check_queue_id(bad)
    with pytest.raises(ValueError):
        Quarantine(tmp_path).read(bad)  # type: ignore[arg-type]


@pytest.fixture
async def admin(tmp_path: Path) -> AsyncIterator[tuple[AdminServer, Quarantine, Spool, Runner]]:
    q = Quarantine(tmp_path / "quarantine")
    spool = Spool(tmp_path / "spool", SyncMode.FSYNC)
    await spool.start()
    runner = Runner()
    commands: dict = {}
    register_quarantine_commands(commands, q, spool, runner)  # type: ignore[arg-type]
    server = AdminServer(tmp_path / "admin.sock", commands)
    yield server, q, spool, runner
    await spool.close()


async def call(server: AdminServer, cmd: str, **args: object) -> dict:
    import json

    return await server.dispatch(json.dumps({"cmd": cmd, "args": args}).encode())


async def test_admin_list_show_release_delete(admin) -> None:  # type: ignore[no-untyped-def]
    server, q, spool, runner = admin
    qid, other = store(q), store(q, "spam score 20.00", "antispam")
    listed = (await call(server, "quarantine.list"))["result"]["entries"]
    assert [e["queue_id"] for e in listed] == sorted([qid, other])
    shown = (await call(server, "quarantine.show", id=qid, raw=True))["result"]
    assert shown["entry"]["reason"] == "virus Test.Virus"
    assert ["X-Spam-Status", "Yes"] in [list(h) for h in shown["headers"]]
    assert base64.b64decode(shown["message_b64"]) == DATA

    assert (await call(server, "quarantine.release", id=qid))["result"] == {"released": qid}
    assert runner.submitted == [qid]
    env, data = spool.read(qid, QueueState.ACTIVE)
    assert data == DATA and env.quarantine_reason == ""
    assert env.tags["quarantine.reason"] == "antivirus: virus Test.Virus"
    assert "quarantine.released" in env.tags
    again = await call(server, "quarantine.release", id=qid)
    assert again["ok"] is False and qid in again["error"]

    assert (await call(server, "quarantine.delete", id=other))["ok"] is True
    assert q.entries() == []
    for cmd in ("quarantine.show", "quarantine.release", "quarantine.delete"):
        bad = await call(server, cmd, id="../../etc/passwd")
        assert bad["ok"] is False and "not a queue id" in bad["error"]
        missing = await call(server, cmd, id="ABCDEF")
        assert missing["ok"] is False and "no quarantined message ABCDEF" in missing["error"]
