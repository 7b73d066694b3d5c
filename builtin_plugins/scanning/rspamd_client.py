"""Rspamd's HTTP protocol (``POST /checkv2``): the envelope in request headers, the message as
the body, a JSON verdict back.

The body is the message buffer itself (aiohttp writes the bytes object as it is: no copy,
no re-encoding). Connections are pooled and kept alive between scans.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from multidict import CIMultiDict

__all__ = [
    "MilterChanges",
    "RspamdAction",
    "RspamdClient",
    "RspamdEnvelope",
    "RspamdError",
    "RspamdResult",
    "parse_result",
]

#: Rspamd's answers are small; a bigger one is not Rspamd.
MAX_ANSWER = 4 * 1024 * 1024


class RspamdError(Exception):
    """Rspamd could not be reached or did not answer with a verdict."""


class RspamdAction(str, enum.Enum):
    """Rspamd's actions, most severe first (``discard``/``quarantine`` are custom actions)."""

    DISCARD = "discard"
    QUARANTINE = "quarantine"
    REJECT = "reject"
    SOFT_REJECT = "soft reject"
    REWRITE_SUBJECT = "rewrite subject"
    ADD_HEADER = "add header"
    GREYLIST = "greylist"
    NO_ACTION = "no action"


@dataclass(frozen=True, slots=True)
class MilterChanges:
    """Header changes Rspamd asks the MTA for (its ``milter`` block)."""

    #: (name, value) to add, in Rspamd's order.
    add: tuple[tuple[str, str], ...] = ()
    #: (name, which): 0 = every occurrence, n > 0 = the n-th (negative counts from the end).
    remove: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class RspamdResult:
    action: RspamdAction
    score: float
    required_score: float
    #: Symbol name -> score, as Rspamd reported them.
    symbols: Mapping[str, float] = field(default_factory=dict)
    #: Rspamd decided without scoring (a pre-result such as GTUBE or a ratelimit).
    skipped: bool = False
    smtp_message: str | None = None
    subject: str | None = None
    milter: MilterChanges = MilterChanges()
    #: The action name as Rspamd sent it (a custom action Elemta does not know reads "no action").
    action_name: str = ""


@dataclass(frozen=True, slots=True)
class RspamdEnvelope:
    """What Rspamd is told besides the message itself."""

    ip: str
    helo: str | None
    mail_from: str | None
    recipients: tuple[str, ...]
    queue_id: str | None
    user: str | None
    mta_name: str

    def headers(self) -> CIMultiDict[str]:
        h: CIMultiDict[str] = CIMultiDict()
        if self.ip:
            h["IP"] = _clean(self.ip)
        if self.helo:
            h["Helo"] = _clean(self.helo)
        h["From"] = _clean(self.mail_from) if self.mail_from else "<>"
        for rcpt in self.recipients:
            h.add("Rcpt", _clean(rcpt))
        if self.queue_id:
            h["Queue-Id"] = _clean(self.queue_id)
        if self.user:
            h["User"] = _clean(self.user)
        h["MTA-Name"] = _clean(self.mta_name)
        h["Content-Type"] = "message/rfc822"
        return h


def _clean(value: str) -> str:
    """A header value cannot carry CR, LF or NUL (and SMTP never gives us such values)."""
    return "".join(c if c not in "\r\n\0" else " " for c in value)


def _text(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _number(d: Mapping[str, Any], key: str) -> float:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise RspamdError(f"rspamd answer has no numeric {key!r}")
    return float(v)


def _milter(block: Any) -> MilterChanges:
    if not isinstance(block, dict):
        return MilterChanges()
    add: list[tuple[str, str]] = []
    adds = block.get("add_headers")
    if isinstance(adds, dict):
        for name, spec in adds.items():
            for item in spec if isinstance(spec, list) else [spec]:
                value = item.get("value") if isinstance(item, dict) else item
                if isinstance(name, str) and isinstance(value, str):
                    add.append((name, value))
    remove: list[tuple[str, int]] = []
    removes = block.get("remove_headers")
    if isinstance(removes, dict):
        for name, which in removes.items():
            if isinstance(name, str) and isinstance(which, int) and not isinstance(which, bool):
                remove.append((name, which))
    return MilterChanges(tuple(add), tuple(remove))


def parse_result(body: bytes) -> RspamdResult:
    """Validate a ``/checkv2`` JSON answer; anything that is not a verdict is RspamdError."""
    try:
        d = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise RspamdError("rspamd answer is not JSON") from None
    if not isinstance(d, dict):
        raise RspamdError("rspamd answer is not a JSON object")
    if "error" in d and "action" not in d:
        raise RspamdError(f"rspamd: {str(d['error'])[:200]}")
    name = d.get("action")
    if not isinstance(name, str):
        raise RspamdError("rspamd answer has no action")
    try:
        action = RspamdAction(name)
    except ValueError:
        action = RspamdAction.NO_ACTION
    symbols: dict[str, float] = {}
    raw_symbols = d.get("symbols")
    if isinstance(raw_symbols, dict):
        for sym, info in raw_symbols.items():
            score = info.get("score", 0.0) if isinstance(info, dict) else 0.0
            if isinstance(score, (int, float)) and not isinstance(score, bool):
                symbols[str(sym)] = float(score)
    messages = d.get("messages")
    smtp_message = _text(messages.get("smtp_message")) if isinstance(messages, dict) else None
    return RspamdResult(
        action=action, score=_number(d, "score"), required_score=_number(d, "required_score"),
        symbols=symbols, skipped=d.get("is_skipped") is True, smtp_message=smtp_message,
        subject=_text(d.get("subject")), milter=_milter(d.get("milter")), action_name=name,
    )


class RspamdClient:
    def __init__(self, url: str, pool_size: int = 64) -> None:
        self.endpoint = url.rstrip("/") + "/checkv2"
        self.pool_size = pool_size
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.pool_size, keepalive_timeout=30),
                # The caller bounds the whole scan; aiohttp's own 5-minute default must not.
                timeout=aiohttp.ClientTimeout(total=None),
                skip_auto_headers=("User-Agent",),
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def check(self, message: bytes, envelope: RspamdEnvelope) -> RspamdResult:
        """Scan one message. A pooled connection Rspamd has closed is retried once."""
        await self.open()
        assert self._session is not None
        headers = envelope.headers()
        retried = False
        while True:
            try:
                async with self._session.post(self.endpoint, data=message,
                                              headers=headers) as resp:
                    body = await resp.content.read(MAX_ANSWER + 1)
                    if resp.status != 200:
                        raise RspamdError(f"rspamd answered HTTP {resp.status}: "
                                          f"{body[:200].decode('utf-8', 'replace')}")
                    if len(body) > MAX_ANSWER:
                        raise RspamdError("rspamd answer is too large")
                    return parse_result(body)
            except aiohttp.ClientConnectorError as e:
                raise RspamdError(f"cannot connect to rspamd at {self.endpoint}: "
                                  f"{e.os_error.strerror or e.os_error}") from None
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as e:
                # A kept-alive connection Rspamd closed (idle, restarted): once more, afresh.
                if retried:
                    raise RspamdError(f"rspamd dropped the connection: {e}") from None
                retried = True
            except aiohttp.ClientError as e:
                raise RspamdError(f"rspamd: {type(e).__name__}: {e}") from None
