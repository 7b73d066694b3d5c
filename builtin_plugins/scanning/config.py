"""The ``[antispam]`` and ``[antivirus]`` sections: what the scanners are and what a verdict does.

Detection is kept apart from policy (as maddy does it): the clients report what Rspamd or
clamd found, and these settings decide whether that is a reject, a quarantine or a discard.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from elemta_core.config.errors import ConfigError
from elemta_core.config.schema import check_positive
from elemta_core.hooks.types import FailurePolicy

__all__ = ["AntispamConfig", "AntivirusConfig", "ClamdAddress", "Oversize", "Verdict"]

MiB = 1024 * 1024

#: What a positive verdict (spam to reject, a virus) turns into.
Verdict = Literal["reject", "quarantine", "discard"]
#: What a message larger than the scanner accepts turns into.
Oversize = Literal["skip", "tempfail", "reject"]


@dataclass
class AntispamConfig:
    """``[antispam]``: Rspamd over HTTP (``/checkv2``).

    Thresholds (``*_score``) override Rspamd's action: when any is set, the action is the one
    with the highest threshold the score reaches, as Rspamd itself decides, except that an
    action Rspamd forced without scoring (GTUBE, a ratelimit: ``is_skipped``) always stands.
    """

    rspamd_url: str = "http://127.0.0.1:11333"
    #: Seconds for one scan (connect, send, answer).
    timeout: float = 10.0
    #: Messages larger than this many bytes are not scanned (0: no limit).
    max_size: int = 20 * MiB
    #: Scanner down, slow or talking nonsense: unset = the pipeline's policy for the plugin.
    failure_policy: FailurePolicy | None = None
    reject_score: float | None = None
    soft_reject_score: float | None = None
    rewrite_subject_score: float | None = None
    add_header_score: float | None = None
    greylist_score: float | None = None
    #: What Rspamd's (or a threshold's) "reject" does.
    reject_action: Verdict = "reject"
    reject_message: str = "Message rejected as spam"
    #: Use Rspamd's own SMTP message (``messages.smtp_message``) in the reply when it has one.
    use_smtp_message: bool = True
    #: Header set to "Yes" on "add header" (and "rewrite subject").
    spam_header: str = "X-Spam"
    #: Subject prefix on "rewrite subject" when Rspamd does not send the new subject itself.
    subject_prefix: str = "***SPAM*** "
    #: Add X-Spam-Score and X-Spam-Status (replacing any the message arrived with).
    score_headers: bool = True
    #: Apply the header changes Rspamd asks for (its ``milter`` block).
    milter_headers: bool = True

    def validate(self) -> None:
        parts = urlsplit(self.rspamd_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError("rspamd_url", f"{self.rspamd_url!r} is not an http(s) URL",
                              'write rspamd_url = "http://127.0.0.1:11333"')
        check_positive("timeout", self.timeout)
        check_positive("max_size", self.max_size, allow_zero=True)
        if not _is_header_name(self.spam_header):
            raise ConfigError("spam_header", f"{self.spam_header!r} is not a header name",
                              'use printable ASCII without ":" or spaces, e.g. "X-Spam"')


class ClamdTransport(str, enum.Enum):
    TCP = "tcp"
    UNIX = "unix"


@dataclass(frozen=True)
class ClamdAddress:
    transport: ClamdTransport
    host: str = ""
    port: int = 0
    path: str = ""

    @classmethod
    def parse(cls, value: str) -> ClamdAddress:
        """``tcp://host:port`` or ``unix:/path`` (``unix:///path`` too)."""
        if value.startswith("unix:"):
            path = value[len("unix:"):]
            path = path.removeprefix("//")
            if not path.startswith("/"):
                raise ValueError("a unix socket needs an absolute path")
            return cls(ClamdTransport.UNIX, path=path)
        parts = urlsplit(value)
        if parts.scheme != "tcp" or not parts.hostname:
            raise ValueError("expected tcp://host:port or unix:/path")
        try:
            port = parts.port
        except ValueError:
            raise ValueError("the port is not a number from 1 to 65535") from None
        if not port:
            raise ValueError("the port is missing")
        return cls(ClamdTransport.TCP, host=parts.hostname, port=port)

    def __str__(self) -> str:
        if self.transport is ClamdTransport.UNIX:
            return f"unix:{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{self.port}"


@dataclass
class AntivirusConfig:
    """``[antivirus]``: clamd's INSTREAM command."""

    clamd: str = "tcp://127.0.0.1:3310"
    #: Seconds for one scan (connect, stream, verdict).
    timeout: float = 30.0
    #: Bytes per INSTREAM chunk.
    chunk_size: int = 64 * 1024
    #: Keep at or below clamd's StreamMaxLength (clamd's default: 25 MiB). Larger messages are
    #: handled by ``oversize``, as is clamd's own "size limit exceeded" answer.
    max_size: int = 25 * MiB
    oversize: Oversize = "skip"
    #: What an infected message turns into.
    action: Verdict = "reject"
    reject_message: str = "Message contains a virus"
    #: Add X-Virus-Scanned (replacing any the message arrived with).
    add_header: bool = True
    #: Scanner down, slow or talking nonsense: unset = the pipeline's policy for the plugin.
    failure_policy: FailurePolicy | None = None

    def validate(self) -> None:
        try:
            ClamdAddress.parse(self.clamd)
        except ValueError as e:
            raise ConfigError("clamd", f"{self.clamd!r}: {e}",
                              'write clamd = "tcp://127.0.0.1:3310" or "unix:/run/clamav/clamd.ctl"'
                              ) from None
        check_positive("timeout", self.timeout)
        check_positive("chunk_size", self.chunk_size)
        check_positive("max_size", self.max_size)
        if self.chunk_size > 0xFFFFFFFF:
            raise ConfigError("chunk_size", "must fit the 4-byte INSTREAM length",
                              "use at most 4294967295 (64 KiB is usual)")

    @property
    def address(self) -> ClamdAddress:
        return ClamdAddress.parse(self.clamd)


def _is_header_name(name: str) -> bool:
    return bool(name) and all(33 <= ord(c) <= 126 and c != ":" for c in name)
