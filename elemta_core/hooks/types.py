"""Hook points, actions and results: the vocabulary every plugin speaks.

Built-in plugins return these values directly; external plugins return their protobuf
twins, which the host maps onto them, so both kinds are judged by one pipeline.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


class HookFamily(enum.Enum):
    CONNECTION = "connection"
    COMMAND = "command"
    TRANSACTION = "transaction"
    MESSAGE = "message"
    QUEUE = "queue"
    DELIVERY = "delivery"
    SECURITY = "security"


class HookPoint(str, enum.Enum):
    """Every point in the life of a connection and a message where plugins are called."""

    CONNECT = "connect"
    DISCONNECT = "disconnect"
    HELO = "helo"
    STARTTLS = "starttls"
    AUTH = "auth"
    UNKNOWN_COMMAND = "unknown_command"
    MAIL_FROM = "mail_from"
    RCPT_TO = "rcpt_to"
    DATA_START = "data_start"
    MESSAGE = "message"
    AFTER_QUEUE = "after_queue"
    QUEUED = "queued"
    DEFERRED = "deferred"
    BOUNCED = "bounced"
    EXPIRED = "expired"
    DELIVERY_ATTEMPT = "delivery_attempt"
    DELIVERY_RESULT = "delivery_result"
    RATE_LIMITED = "rate_limited"
    AUTH_FAILED = "auth_failed"
    POLICY_VIOLATION = "policy_violation"
    PLUGIN_FAILED = "plugin_failed"

    @property
    def family(self) -> HookFamily:
        return _FAMILY[self]

    @property
    def observer(self) -> bool:
        """Observer hooks are told what happened; their actions are ignored."""
        return self in OBSERVER_HOOKS


_FAMILY: dict[HookPoint, HookFamily] = {
    HookPoint.CONNECT: HookFamily.CONNECTION,
    HookPoint.DISCONNECT: HookFamily.CONNECTION,
    HookPoint.HELO: HookFamily.COMMAND,
    HookPoint.STARTTLS: HookFamily.COMMAND,
    HookPoint.AUTH: HookFamily.COMMAND,
    HookPoint.UNKNOWN_COMMAND: HookFamily.COMMAND,
    HookPoint.MAIL_FROM: HookFamily.TRANSACTION,
    HookPoint.RCPT_TO: HookFamily.TRANSACTION,
    HookPoint.DATA_START: HookFamily.TRANSACTION,
    HookPoint.MESSAGE: HookFamily.MESSAGE,
    HookPoint.AFTER_QUEUE: HookFamily.MESSAGE,
    HookPoint.QUEUED: HookFamily.QUEUE,
    HookPoint.DEFERRED: HookFamily.QUEUE,
    HookPoint.BOUNCED: HookFamily.QUEUE,
    HookPoint.EXPIRED: HookFamily.QUEUE,
    HookPoint.DELIVERY_ATTEMPT: HookFamily.DELIVERY,
    HookPoint.DELIVERY_RESULT: HookFamily.DELIVERY,
    HookPoint.RATE_LIMITED: HookFamily.SECURITY,
    HookPoint.AUTH_FAILED: HookFamily.SECURITY,
    HookPoint.POLICY_VIOLATION: HookFamily.SECURITY,
    HookPoint.PLUGIN_FAILED: HookFamily.SECURITY,
}

#: Hooks whose results are ignored: the event already happened (or is a notification).
OBSERVER_HOOKS: frozenset[HookPoint] = frozenset(
    {
        HookPoint.DISCONNECT,
        HookPoint.AFTER_QUEUE,
        HookPoint.QUEUED,
        HookPoint.DEFERRED,
        HookPoint.BOUNCED,
        HookPoint.EXPIRED,
        HookPoint.DELIVERY_RESULT,
        HookPoint.RATE_LIMITED,
        HookPoint.AUTH_FAILED,
        HookPoint.POLICY_VIOLATION,
        HookPoint.PLUGIN_FAILED,
    }
)


class Action(enum.IntEnum):
    """What a plugin decides. The first non-CONTINUE result in priority order wins."""

    CONTINUE = 0
    ACCEPT = 1
    REJECT = 2
    TEMPFAIL = 3
    DISCARD = 4
    QUARANTINE = 5


class FailurePolicy(str, enum.Enum):
    """What a plugin's crash, timeout or absence turns into."""

    TEMPFAIL = "tempfail"
    CONTINUE = "continue"
    REJECT = "reject"


class HeaderOp(enum.Enum):
    ADD = "add"  # prepend a header (the usual place for trace and result headers)
    REMOVE = "remove"  # remove every header of that name (or only the index-th, 1-based)
    REPLACE = "replace"  # remove all of that name, then add one


@dataclass(frozen=True, slots=True)
class HeaderChange:
    op: HeaderOp
    name: str
    value: str = ""
    index: int = 0  # for REMOVE: 0 = all occurrences, n = the n-th (1-based)


_NO_TAGS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class HookResult:
    """A plugin's answer. ``code``/``enhanced``/``text`` default per action when left unset."""

    action: Action = Action.CONTINUE
    code: int | None = None
    enhanced: str | None = None
    text: str | None = None
    headers: tuple[HeaderChange, ...] = ()
    tags: Mapping[str, str] = field(default_factory=lambda: _NO_TAGS)
    reason: str | None = None  # detail for logs and quarantine, never sent to the client

    @classmethod
    def accept(cls, text: str | None = None, **kw: object) -> HookResult:
        return cls(Action.ACCEPT, text=text, **kw)  # type: ignore[arg-type]

    @classmethod
    def reject(
        cls, text: str = "Rejected by policy", code: int = 550, enhanced: str = "5.7.1",
        **kw: object,
    ) -> HookResult:
        return cls(Action.REJECT, code=code, enhanced=enhanced, text=text, **kw)  # type: ignore[arg-type]

    @classmethod
    def tempfail(
        cls, text: str = "Temporarily deferred, try again later", code: int = 451,
        enhanced: str = "4.7.1", **kw: object,
    ) -> HookResult:
        return cls(Action.TEMPFAIL, code=code, enhanced=enhanced, text=text, **kw)  # type: ignore[arg-type]

    @classmethod
    def discard(cls, reason: str | None = None, **kw: object) -> HookResult:
        return cls(Action.DISCARD, reason=reason, **kw)  # type: ignore[arg-type]

    @classmethod
    def quarantine(cls, reason: str, **kw: object) -> HookResult:
        return cls(Action.QUARANTINE, reason=reason, **kw)  # type: ignore[arg-type]

    @classmethod
    def add_headers(cls, *pairs: tuple[str, str], **tags: str) -> HookResult:
        return cls(
            Action.CONTINUE,
            headers=tuple(HeaderChange(HeaderOp.ADD, n, v) for n, v in pairs),
            tags=tags or _NO_TAGS,
        )

    @classmethod
    def with_tags(cls, tags: Mapping[str, str]) -> HookResult:
        return cls(Action.CONTINUE, tags=tags)


#: The shared no-op answer: returning it allocates nothing.
CONTINUE = HookResult()

#: Default replies per action when a plugin leaves code/enhanced/text unset.
DEFAULT_REPLY: dict[Action, tuple[int, str, str]] = {
    Action.ACCEPT: (250, "2.0.0", "OK"),
    Action.REJECT: (550, "5.7.1", "Rejected by policy"),
    Action.TEMPFAIL: (451, "4.7.1", "Temporarily deferred, try again later"),
    Action.DISCARD: (250, "2.0.0", "OK"),
    Action.QUARANTINE: (250, "2.0.0", "OK"),
}


def smtp_reply(result: HookResult, *, default_ok: str = "250 2.0.0 OK") -> str:
    """Render a result as one SMTP reply line (multi-line text becomes continuation lines)."""
    if result.action is Action.CONTINUE:
        return default_ok
    dcode, denh, dtext = DEFAULT_REPLY[result.action]
    code = result.code or dcode
    # A plugin may not turn a rejection into a success code or the reverse.
    if result.action is Action.REJECT and not 500 <= code <= 599 or result.action is Action.TEMPFAIL and not 400 <= code <= 499:
        code = dcode
    enhanced = result.enhanced or denh
    if enhanced[:1] != str(code)[0]:
        enhanced = denh
    text = (result.text or dtext).replace("\r", " ")
    lines = [t for t in text.split("\n") if t] or [dtext]
    out = [f"{code}-{enhanced} {t}" for t in lines[:-1]]
    out.append(f"{code} {enhanced} {lines[-1]}")
    return "\r\n".join(out)
