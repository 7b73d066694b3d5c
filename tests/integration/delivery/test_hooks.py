"""Queue and delivery hooks reach external plugins (gRPC) like built-in ones."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.integration.delivery.conftest import FAST, RELAY, send
from tests.integration.external.conftest import pinned_entry
from tests.support.server import ServerProcess
from tests.support.smtp_sink import Sink, SinkHandler

PLUGIN = Path(__file__).parent / "plugins" / "delivery_observer.py"


def test_external_plugin_sees_and_steers_delivery(elemta_server, tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    entry = pinned_entry(tmp_path, PLUGIN, "delivery_observer", config={"log": str(log)})
    tries: dict[str, int] = {}

    def policy(a: str) -> str | None:
        tries[a] = tries.get(a, 0) + 1
        return "451 4.7.1 later" if a.startswith("slow") and tries[a] == 1 else None

    with Sink(SinkHandler(rcpt_policy=policy)) as sink:
        srv: ServerProcess = elemta_server(server=RELAY, queue=FAST, plugins={"external": [entry]},
                                           delivery={"transports": {
                                               "remote.test": f"smtp:[127.0.0.1]:{sink.port}"}})
        qid = send(srv.port, "alice@localhost",
                   ["ok@remote.test", "blocked@remote.test", "slow@remote.test"])
        sink.wait_recipients(2, timeout=20)
        srv.wait_delivered("alice@localhost")  # the DSN for blocked@
        deadline = time.monotonic() + 10
        events: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            events = [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []
            if sum(e["hook"] == "delivery_result" and e["queue_id"] == qid for e in events) >= 4:
                break
            time.sleep(0.05)
    assert sorted(sink.recipients()) == ["ok@remote.test", "slow@remote.test"]
    mine = [(e["hook"], e["recipient"], e["status"]) for e in events if e["queue_id"] == qid]
    assert ("delivery_attempt", "blocked@remote.test", "attempt") in mine
    assert ("delivery_result", "blocked@remote.test", "failed") in mine
    assert ("bounced", "blocked@remote.test", "bounced") in mine
    assert ("delivery_result", "slow@remote.test", "deferred") in mine
    assert ("deferred", "", "deferred") in mine
    assert ("delivery_result", "slow@remote.test", "delivered") in mine
    assert ("delivery_result", "ok@remote.test", "delivered") in mine
    assert ("queued", "", "queued") in mine  # the handler's, for the received message
    dsn_queued = [e for e in events if e["hook"] == "queued" and e["queue_id"] != qid]
    assert dsn_queued, "the DSN's own queued hook"
