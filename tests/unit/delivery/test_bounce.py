"""DSNs are RFC 3464 multipart/reports, and never go to the null sender or answer a DSN."""

from __future__ import annotations

import email
import email.policy

from elemta_core.delivery.bounce import (
    NoticeKind,
    RecipientStatus,
    build_dsn,
    should_notify,
)
from elemta_core.message.message import Message

ORIGINAL = b"From: alice@example.org\r\nSubject: report Q3\r\n\r\nsecret body\r\n"


def _parts(raw: bytes) -> dict[str, email.message.Message]:
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    return {p.get_content_type(): p for p in msg.walk()}


def test_failed_dsn_structure() -> None:
    raw = build_dsn(kind=NoticeKind.FAILED, reporting_mta="mx.test", queue_id="ABC",
                    mail_from="alice@example.org",
                    items=[RecipientStatus("bob@remote.test", 550, "5.1.1 <bob>: no such user",
                                           "[192.0.2.1]:25"),
                           RecipientStatus("carol@remote.test", 554, "rejected")],
                    original=ORIGINAL, received_at=1_700_000_000.0, now=1_700_000_100.0)
    assert b"\n.\r\n" not in raw and b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    assert msg["To"] == "<alice@example.org>"
    assert msg["Auto-Submitted"] == "auto-replied"
    parts = _parts(raw)
    assert set(parts) >= {"text/plain", "message/delivery-status", "text/rfc822-headers"}
    blocks = [dict(b) for b in parts["message/delivery-status"].get_payload()]
    assert blocks[0]["Reporting-MTA"] == "dns; mx.test"
    assert blocks[1]["Final-Recipient"] == "rfc822; bob@remote.test"
    assert blocks[1]["Action"] == "failed"
    assert blocks[1]["Status"] == "5.1.1"  # the enhanced code the server gave
    assert blocks[1]["Diagnostic-Code"] == "smtp; 550 5.1.1 <bob>: no such user"
    assert blocks[2]["Status"] == "5.0.0"  # none given: the generic one
    headers = parts["text/rfc822-headers"].get_payload()
    assert "Subject: report Q3" in headers and "secret body" not in headers


def test_delay_notice_and_expiry_status() -> None:
    raw = build_dsn(kind=NoticeKind.DELAYED, reporting_mta="mx.test", queue_id="ABC",
                    mail_from="alice@example.org",
                    items=[RecipientStatus("bob@remote.test", 451, "4.4.1 connection refused")],
                    original=ORIGINAL, received_at=0.0, now=4 * 3600.0)
    blocks = [dict(b) for b in _parts(raw)["message/delivery-status"].get_payload()]
    assert blocks[1]["Action"] == "delayed" and blocks[1]["Status"] == "4.4.1"
    assert b"not been delivered yet after 4.0 hours" in raw


def test_untrusted_reply_text_cannot_inject_fields() -> None:
    raw = build_dsn(kind=NoticeKind.FAILED, reporting_mta="mx.test", queue_id="Q",
                    mail_from="a@b.test",
                    items=[RecipientStatus("x@y.test", 550, "bad\r\nAction: delivered\r\n")],
                    original=ORIGINAL, received_at=0.0)
    blocks = [dict(b) for b in _parts(raw)["message/delivery-status"].get_payload()]
    assert blocks[1]["Action"] == "failed"
    assert blocks[1]["Diagnostic-Code"] == "smtp; 550 bad Action: delivered"


def test_loop_protection() -> None:
    plain = Message(ORIGINAL)
    assert should_notify("alice@example.org", plain)
    assert not should_notify("", plain)
    assert not should_notify("MAILER-DAEMON@remote.test", plain)
    dsn = Message(build_dsn(kind=NoticeKind.FAILED, reporting_mta="m", queue_id="Q",
                            mail_from="a@b.test", items=[RecipientStatus("x@y.test", 550, "no")],
                            original=ORIGINAL, received_at=0.0))
    assert not should_notify("someone@example.org", dsn)
