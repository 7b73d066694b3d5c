"""The values a handler sees and returns: a read-only context view and a Result.

``Context`` wraps the protobuf message without copying it (a hook call costs microseconds);
``Result`` is a small dataclass turned into protobuf once, when the answer is sent.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import SMTP
from typing import Any, cast

from elemta_plugin._proto.elemta.plugin.v1 import plugin_pb2 as pb


class Action(enum.IntEnum):
    CONTINUE = pb.ACTION_CONTINUE
    ACCEPT = pb.ACTION_ACCEPT
    REJECT = pb.ACTION_REJECT
    TEMPFAIL = pb.ACTION_TEMPFAIL
    DISCARD = pb.ACTION_DISCARD
    QUARANTINE = pb.ACTION_QUARANTINE


class FailurePolicy(enum.IntEnum):
    TEMPFAIL = pb.FAILURE_POLICY_TEMPFAIL
    CONTINUE = pb.FAILURE_POLICY_CONTINUE
    REJECT = pb.FAILURE_POLICY_REJECT


class HeaderOp(enum.IntEnum):
    ADD = pb.HEADER_OP_ADD
    REMOVE = pb.HEADER_OP_REMOVE
    REPLACE = pb.HEADER_OP_REPLACE


#: Hook names as the server spells them (``rcpt_to``), to protocol enum values.
HOOKS: dict[str, int] = {
    name[len("HOOK_"):].lower(): value
    for name, value in pb.Hook.items() if value != pb.HOOK_UNSPECIFIED
}
HOOK_NAMES: dict[int, str] = {v: k for k, v in HOOKS.items()}


@dataclass(frozen=True, slots=True)
class HeaderChange:
    op: HeaderOp
    name: str
    value: str = ""
    index: int = 0


@dataclass(slots=True)
class Result:
    """A handler's answer; returning ``None`` from a handler means CONTINUE."""

    action: Action = Action.CONTINUE
    code: int = 0
    enhanced: str = ""
    text: str = ""
    headers: list[HeaderChange] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    reason: str = ""

    @classmethod
    def cont(cls, **tags: str) -> Result:
        return cls(tags=dict(tags))

    @classmethod
    def accept(cls, text: str = "") -> Result:
        return cls(Action.ACCEPT, text=text)

    @classmethod
    def reject(cls, text: str = "Rejected by policy", code: int = 550,
               enhanced: str = "5.7.1", reason: str = "") -> Result:
        return cls(Action.REJECT, code, enhanced, text, reason=reason)

    @classmethod
    def tempfail(cls, text: str = "Temporarily deferred, try again later", code: int = 451,
                 enhanced: str = "4.7.1", reason: str = "") -> Result:
        return cls(Action.TEMPFAIL, code, enhanced, text, reason=reason)

    @classmethod
    def discard(cls, reason: str = "") -> Result:
        return cls(Action.DISCARD, reason=reason)

    @classmethod
    def quarantine(cls, reason: str) -> Result:
        return cls(Action.QUARANTINE, reason=reason)

    def add_header(self, name: str, value: str) -> Result:
        self.headers.append(HeaderChange(HeaderOp.ADD, name, value))
        return self

    def remove_header(self, name: str, index: int = 0) -> Result:
        self.headers.append(HeaderChange(HeaderOp.REMOVE, name, index=index))
        return self

    def replace_header(self, name: str, value: str) -> Result:
        self.headers.append(HeaderChange(HeaderOp.REPLACE, name, value))
        return self

    def tag(self, **tags: str) -> Result:
        self.tags.update(tags)
        return self

    def to_proto(self) -> pb.Result:
        return pb.Result(
            action=cast(Any, int(self.action)), code=self.code, enhanced=self.enhanced,
            text=self.text,
            headers=[pb.HeaderChange(op=cast(Any, int(h.op)), name=h.name, value=h.value,
                                     index=h.index)
                     for h in self.headers],
            tags=self.tags, reason=self.reason,
        )


class Message:
    """The received message: raw bytes plus lazily parsed headers."""

    __slots__ = ("_headers", "raw")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self._headers: Any = None

    @property
    def headers(self) -> Any:
        """An ``email.message.EmailMessage`` holding the header section only."""
        if self._headers is None:
            self._headers = BytesHeaderParser(policy=SMTP).parsebytes(self.raw)
        return self._headers

    def get(self, name: str, default: str | None = None) -> str | None:
        v = self.headers.get(name)
        return default if v is None else str(v)

    def get_all(self, name: str) -> list[str]:
        return [str(v) for v in self.headers.get_all(name, [])]

    @property
    def body(self) -> bytes:
        raw = self.raw
        for sep in (b"\r\n\r\n", b"\n\n"):
            i = raw.find(sep)
            if i >= 0:
                return raw[i + len(sep):]
        return b""


class Context:
    """A read-only view of the server's hook context (``elemta.plugin.v1.Context``)."""

    __slots__ = ("_message", "_pb", "hook")

    def __init__(self, hook: str, ctx: pb.Context) -> None:
        self.hook = hook
        self._pb = ctx
        self._message: Message | None = None

    def __getattr__(self, name: str) -> Any:
        # Scalars and lists pass through (peer_ip, helo, tls, recipients, rcpt_options …).
        return getattr(self._pb, name)

    @property
    def proto(self) -> pb.Context:
        return self._pb

    @property
    def mail_from(self) -> str | None:
        """The envelope sender; ``""`` is the null sender, ``None`` before MAIL FROM."""
        return self._pb.mail_from if self._pb.has_mail_from else None

    @property
    def recipient(self) -> str | None:
        return self._pb.recipient or None

    @property
    def helo(self) -> str | None:
        return self._pb.helo or None

    @property
    def auth_user(self) -> str | None:
        return self._pb.auth_user or None

    @property
    def tags(self) -> Mapping[str, str]:
        return cast(Mapping[str, str], self._pb.tags)

    @property
    def message(self) -> Message | None:
        if self._message is None and self._pb.HasField("message"):
            self._message = Message(self._pb.message.raw)
        return self._message

    @property
    def event(self) -> pb.SecurityEvent | None:
        return self._pb.event if self._pb.HasField("event") else None

    @property
    def delivery(self) -> pb.DeliveryInfo | None:
        return self._pb.delivery if self._pb.HasField("delivery") else None

    def __repr__(self) -> str:
        return f"Context(hook={self.hook!r}, session_id={self._pb.session_id!r})"
