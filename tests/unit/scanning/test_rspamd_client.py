"""Parsing Rspamd's /checkv2 answers and rendering the envelope as request headers."""

from __future__ import annotations

import json

import pytest

from builtin_plugins.scanning.rspamd_client import (
    MilterChanges,
    RspamdAction,
    RspamdEnvelope,
    RspamdError,
    parse_result,
)

# What Rspamd 3.4 answered to GTUBE in the integration set-up.
GTUBE_ANSWER = (b'{"is_skipped": true, "score": 15.0, "required_score": 15.0, "action": "reject",'
                b' "symbols": {"GTUBE": {"name": "GTUBE", "score": 0.0, "metric_score": 0.0}},'
                b' "messages": {"smtp_message": "Gtube pattern"}, "message-id": "undef"}')


def test_gtube_answer() -> None:
    r = parse_result(GTUBE_ANSWER)
    assert r.action is RspamdAction.REJECT and r.skipped
    assert r.score == 15.0 and r.required_score == 15.0
    assert r.smtp_message == "Gtube pattern"
    assert dict(r.symbols) == {"GTUBE": 0.0}
    assert r.milter == MilterChanges()


def test_milter_block_in_all_its_shapes() -> None:
    r = parse_result(json.dumps({
        "score": 7.5, "required_score": 15, "action": "rewrite subject", "subject": "[SPAM] hi",
        "milter": {
            "add_headers": {
                "X-Plain": "v1",
                "X-Ordered": {"value": "v2", "order": 0},
                "X-Many": [{"value": "a", "order": 1}, "b"],
                "X-Bad": 42,
            },
            "remove_headers": {"X-Spam": 0, "X-Second": 2, "X-Last": -1, "X-Bad": "all"},
        },
    }).encode())
    assert r.action is RspamdAction.REWRITE_SUBJECT and r.subject == "[SPAM] hi"
    assert r.milter.add == (("X-Plain", "v1"), ("X-Ordered", "v2"), ("X-Many", "a"),
                            ("X-Many", "b"))
    assert r.milter.remove == (("X-Spam", 0), ("X-Second", 2), ("X-Last", -1))


def test_unknown_custom_action_reads_no_action_but_keeps_its_name() -> None:
    r = parse_result(b'{"score": 1, "required_score": 15, "action": "my custom"}')
    assert r.action is RspamdAction.NO_ACTION and r.action_name == "my custom"


@pytest.mark.parametrize("body", [
    b"", b"not json", b"[1, 2]", b'{"error": "cannot parse message"}',
    b'{"score": 1, "required_score": 15}', b'{"action": "reject", "required_score": 15}',
    b'{"action": "reject", "score": "high", "required_score": 15}',
    b'{"action": "reject", "score": NaN, "required_score": 15}',
    b'{"action": 3, "score": 1, "required_score": 15}', b"\xff\xfe",
])
def test_what_is_not_a_verdict_is_an_error(body: bytes) -> None:
    with pytest.raises(RspamdError):
        parse_result(body)


def test_envelope_headers() -> None:
    h = RspamdEnvelope(ip="192.0.2.1", helo="mx.example.org", mail_from="a@example.org",
                       recipients=("b@example.net", "c@example.net"), queue_id="ABC",
                       user="alice", mta_name="mx.test").headers()
    assert h["IP"] == "192.0.2.1" and h["Helo"] == "mx.example.org"
    assert h["From"] == "a@example.org" and h.getall("Rcpt") == ["b@example.net", "c@example.net"]
    assert h["Queue-Id"] == "ABC" and h["User"] == "alice" and h["MTA-Name"] == "mx.test"


def test_envelope_null_sender_and_no_injection() -> None:
    h = RspamdEnvelope(ip="", helo="evil\r\nX-Injected: 1", mail_from="", recipients=(),
                       queue_id=None, user=None, mta_name="mx").headers()
    assert h["From"] == "<>" and "IP" not in h and "User" not in h and "Queue-Id" not in h
    assert "\r" not in h["Helo"] and "\n" not in h["Helo"]
