"""LMTP (RFC 2033) sessions: to Dovecot, Cyrus or another MTA's local delivery agent.

LMTP is SMTP with LHLO instead of EHLO and one reply per accepted recipient after the
message, so one full mailbox defers only its own recipient. It runs over TCP or a unix
socket (``lmtp:unix:/run/dovecot/lmtp``).
"""

from __future__ import annotations

from elemta_core.delivery.smtp import SmtpSession


class LmtpSession(SmtpSession):
    lmtp = True
