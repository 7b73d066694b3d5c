"""The context a hook sees: who is connected, what they said, and what plugins found so far."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from elemta_core.hooks.types import HeaderChange

if TYPE_CHECKING:
    from elemta_core.message.message import Message


@dataclass(slots=True)
class SecurityEvent:
    """Why a security (observer) hook fired."""

    kind: str  # rate_limited | auth_failed | policy_violation | plugin_failed
    detail: str = ""
    plugin: str | None = None
    data: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class DeliveryInfo:
    """What queue and delivery hooks are told about one recipient's fate."""

    queue_id: str
    recipient: str | None = None
    attempt: int = 0
    status: str = ""  # queued | deferred | bounced | expired | delivered | failed
    code: int | None = None
    text: str = ""
    destination: str = ""


@dataclass(slots=True)
class HookContext:
    """Per-connection state, updated as the session advances.

    ``tags`` are shared between plugins: each result's tags are merged in, so a later plugin
    (built-in or external) can read e.g. ``spf.result`` or ``spam.score``.
    """

    session_id: str
    peer_ip: str
    peer_port: int = 0
    local_ip: str = ""
    local_port: int = 0
    helo: str | None = None
    esmtp: bool = False
    tls: bool = False
    tls_version: str | None = None
    tls_cipher: str | None = None
    auth_user: str | None = None
    auth_mechanism: str | None = None
    transaction_id: str | None = None
    mail_from: str | None = None
    mail_options: list[str] = field(default_factory=list)
    recipients: list[str] = field(default_factory=list)
    recipient: str | None = None
    rcpt_options: list[str] = field(default_factory=list)
    command: str | None = None
    message: Message | None = None
    tags: dict[str, str] = field(default_factory=dict)
    header_changes: list[HeaderChange] = field(default_factory=list)
    event: SecurityEvent | None = None
    delivery: DeliveryInfo | None = None
    relay_allowed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    _session_tags: dict[str, str] = field(default_factory=dict, repr=False)

    def begin_transaction(self, transaction_id: str) -> None:
        """Start a mail transaction; tags set so far belong to the session and survive it."""
        self._session_tags = dict(self.tags)
        self.transaction_id = transaction_id
        self.mail_from = None
        self.mail_options = []
        self.recipients = []
        self.recipient = None
        self.message = None
        self.header_changes = []

    def end_transaction(self) -> None:
        """Forget the transaction (after DATA or RSET); session tags are restored."""
        if self.transaction_id is not None:
            self.tags = dict(self._session_tags)
        self.transaction_id = None
        self.mail_from = None
        self.mail_options = []
        self.recipients = []
        self.recipient = None
        self.message = None
        self.header_changes = []
