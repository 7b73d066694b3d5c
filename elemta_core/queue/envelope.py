"""The spool record: envelope and per-recipient state of one queued message."""

from __future__ import annotations

import enum
import itertools
import json
import os
import secrets
import time
from dataclasses import dataclass, field, fields
from typing import Any


class QueueState(str, enum.Enum):
    ACTIVE = "active"
    DEFERRED = "deferred"
    HOLD = "hold"
    FAILED = "failed"


class RecipientState(str, enum.Enum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


_seq = itertools.count()
_salt = f"{secrets.randbits(8):02X}"  # once per process: tells apart restarts that reuse a pid


def new_queue_id() -> str:
    """Sortable by arrival and unique across processes: µs time, pid, a counter and a salt.

    No syscall per id: a session handing out thousands per second should not pay for
    ``getrandom`` each time.
    """
    return (f"{time.time_ns() // 1000:013X}{os.getpid() & 0xFFFF:04X}"
            f"{next(_seq) & 0xFFF:03X}{_salt}")


@dataclass
class Recipient:
    address: str
    state: RecipientState = RecipientState.PENDING
    attempts: int = 0
    last_code: int | None = None
    last_text: str = ""


@dataclass
class Envelope:
    queue_id: str
    mail_from: str
    recipients: list[Recipient]
    received_at: float = field(default_factory=time.time)
    peer_ip: str = ""
    helo: str = ""
    auth_user: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    attempts: int = 0
    next_attempt: float = 0.0
    last_error: str = ""
    quarantine_reason: str = ""

    def to_json(self) -> bytes:
        # Built by hand: dataclasses.asdict deep-copies recursively and cost 4x as much on
        # the path of every accepted message. test_envelope pins it against asdict.
        d = {f: getattr(self, f) for f in _FIELDS}
        d["recipients"] = [
            {"address": r.address, "state": r.state.value, "attempts": r.attempts,
             "last_code": r.last_code, "last_text": r.last_text}
            for r in self.recipients
        ]
        return json.dumps(d, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> Envelope:
        d: dict[str, Any] = json.loads(data)
        d["recipients"] = [
            Recipient(r["address"], RecipientState(r["state"]), r.get("attempts", 0),
                      r.get("last_code"), r.get("last_text", ""))
            for r in d["recipients"]
        ]
        return cls(**d)

    def pending(self) -> list[Recipient]:
        return [r for r in self.recipients if r.state is RecipientState.PENDING]


_FIELDS = tuple(f.name for f in fields(Envelope))
