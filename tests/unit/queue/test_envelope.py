from __future__ import annotations

import json
from dataclasses import asdict

from elemta_core.queue.envelope import Envelope, Recipient, RecipientState


def test_json_matches_asdict_and_round_trips() -> None:
    env = Envelope("Q1", "a@b.example", [Recipient("x@y.example"),
                                         Recipient("z@y.example", RecipientState.FAILED, 2, 550,
                                                   "no such user")],
                   peer_ip="192.0.2.1", helo="h", auth_user="u", tags={"spf.result": "pass"},
                   attempts=1, next_attempt=5.0, last_error="e", quarantine_reason="r")
    want = asdict(env)
    for r in want["recipients"]:
        r["state"] = r["state"].value
    assert json.loads(env.to_json()) == want
    assert Envelope.from_json(env.to_json()) == env
