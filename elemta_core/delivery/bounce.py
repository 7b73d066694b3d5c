"""Delivery status notifications (RFC 3464): a multipart/report back to the sender.

A DSN goes to the envelope sender from the null sender (``MAIL FROM:<>``), so it can never
itself be bounced: a failure to deliver a DSN is logged and dropped (RFC 5321 6.1), and
no DSN is ever made for a message from the null sender or for a message that is itself a
delivery report. That is the loop protection; the hop count guards the rest.
"""

from __future__ import annotations

import email.utils
import enum
import re
import secrets
import time
from dataclasses import dataclass

from elemta_core.message.message import Message

_ENHANCED = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")


class NoticeKind(str, enum.Enum):
    FAILED = "failed"
    DELAYED = "delayed"


@dataclass(frozen=True, slots=True)
class RecipientStatus:
    address: str
    code: int | None
    text: str
    remote: str = ""  # where the reply came from, when a server gave it
    #: Overrides what the reply says, e.g. 4.4.7 with a readable reason for an expired message.
    status_code: str = ""
    reason: str = ""

    def status(self, kind: NoticeKind) -> str:
        """The enhanced status code the text starts with (an expired message keeps its
        4.4.7 with ``Action: failed``, as RFC 3463 intends), or a generic one."""
        if self.status_code:
            return self.status_code
        m = _ENHANCED.search(self.text)
        if m is not None:
            return m.group(1)
        return "4.0.0" if kind is NoticeKind.DELAYED else "5.0.0"


def is_report(message: Message) -> bool:
    """A delivery report or auto-reply: never answered with another report."""
    ctype = (message.get("Content-Type") or "").lower()
    return bool("multipart/report" in ctype and "delivery-status" in ctype)


def should_notify(mail_from: str, message: Message) -> bool:
    """Loop protection: no DSN to the null sender, to a mailer-daemon, or about a DSN."""
    if not mail_from or mail_from == "<>":
        return False
    if mail_from.partition("@")[0].lower() in ("mailer-daemon", "postmaster-bounce"):
        return False
    return not is_report(message)


def _text(kind: NoticeKind, reporting_mta: str, items: list[RecipientStatus],
          age_hours: float) -> str:
    if kind is NoticeKind.FAILED:
        head = (f"This is the mail system at host {reporting_mta}.\n\n"
                "I'm sorry to have to inform you that your message could not\n"
                "be delivered to one or more recipients. It's attached below.\n")
    else:
        head = (f"This is the mail system at host {reporting_mta}.\n\n"
                f"Your message has not been delivered yet after {age_hours:.1f} hours.\n"
                "It is still queued and will be retried; you do not need to resend it.\n")
    lines = [f"<{it.address}>: {_clean(it.reason or it.text) or 'no reason given'}" for it in items]
    return head + "\n" + "\n".join(lines) + "\n"


def build_dsn(*, kind: NoticeKind, reporting_mta: str, queue_id: str, mail_from: str,
              items: list[RecipientStatus], original: bytes, received_at: float,
              now: float | None = None) -> bytes:
    """Render the DSN with CRLF line endings, ready for the spool.

    The parts are assembled by hand: the structure is fixed by RFC 3464, and the stdlib's
    generator cannot render a message/delivery-status part built from raw fields.
    """
    now = time.time() if now is None else now
    date = email.utils.formatdate(now, localtime=True)
    boundary = f"{queue_id}.{secrets.token_hex(8)}/{reporting_mta}"
    age = (now - received_at) / 3600
    head = [
        ("From", f"Mail Delivery System <MAILER-DAEMON@{reporting_mta}>"),
        ("To", f"<{mail_from}>"),
        ("Subject", "Undelivered Mail Returned to Sender" if kind is NoticeKind.FAILED
         else "Delayed Mail (still being retried)"),
        ("Date", date),
        ("Message-ID", email.utils.make_msgid("dsn", domain=reporting_mta)),
        ("Auto-Submitted", "auto-replied"),
        ("MIME-Version", "1.0"),
        ("Content-Type", f'multipart/report; report-type=delivery-status;\r\n\tboundary="{boundary}"'),
    ]
    out = [f"{k}: {v}\r\n" for k, v in head]
    out.append("\r\nThis is a MIME-encapsulated message.\r\n\r\n")
    out.append(f"--{boundary}\r\nContent-Description: Notification\r\n"
               "Content-Type: text/plain; charset=utf-8\r\n\r\n")
    out.append(_text(kind, reporting_mta, items, age).replace("\n", "\r\n"))
    out.append(f"\r\n--{boundary}\r\nContent-Description: Delivery report\r\n"
               "Content-Type: message/delivery-status\r\n\r\n")
    out.append(f"Reporting-MTA: dns; {reporting_mta}\r\n"
               f"X-Elemta-Queue-ID: {queue_id}\r\n"
               f"Arrival-Date: {email.utils.formatdate(received_at, localtime=True)}\r\n")
    for it in items:
        out.append(f"\r\nFinal-Recipient: rfc822; {it.address}\r\n"
                   f"Action: {kind.value}\r\n"
                   f"Status: {it.status(kind)}\r\n")
        if it.remote:
            out.append(f"Remote-MTA: dns; {_clean(it.remote)}\r\n")
        if it.code is not None and it.text:
            out.append(f"Diagnostic-Code: smtp; {it.code} {_clean(it.text)}\r\n")
        out.append(f"Last-Attempt-Date: {date}\r\n")
    out.append(f"\r\n--{boundary}\r\nContent-Description: Undelivered message headers\r\n"
               "Content-Type: text/rfc822-headers\r\n\r\n")
    headers = Message(original).header_bytes()
    text = "".join(out).encode("utf-8", "replace")
    return text + headers + f"\r\n--{boundary}--\r\n".encode("ascii")


def _clean(value: str) -> str:
    """One line of printable text: server replies are untrusted and may carry CR/LF."""
    return " ".join("".join(c if c.isprintable() else " " for c in value).split())
