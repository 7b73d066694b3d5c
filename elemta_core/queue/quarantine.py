"""The quarantine area: messages a plugin set aside, with the reason, until an operator acts.

One file per message, in the spool's format (magic line, JSON envelope line, message), named
by queue id. The reason travels in the envelope as ``"<plugin>: <reason>"``. Every method
here blocks: call it from a thread (the admin commands do, in ``quarantine_admin``).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from elemta_core.queue.envelope import Envelope
from elemta_core.queue.spool import (
    MAGIC,
    CorruptEntry,
    _fsync_dir,
    _write_all,
    decode_entry,
    encode_entry,
)

#: Queue ids are [0-9A-F]; be a little wider, never wide enough for a path.
_QUEUE_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")


class NotQuarantined(LookupError):
    """No quarantined message has that queue id."""


@dataclass
class QuarantineEntry:
    queue_id: str
    reason: str
    plugin: str
    mail_from: str
    recipients: list[str]
    received_at: float
    size: int
    tags: dict[str, str] = field(default_factory=dict)
    peer_ip: str = ""
    helo: str = ""


def check_queue_id(queue_id: object) -> str:
    """A queue id as given by a user; anything that could name another file is refused."""
    if not isinstance(queue_id, str) or not _QUEUE_ID.fullmatch(queue_id):
        raise ValueError(f"{queue_id!r} is not a queue id")
    return queue_id


def _entry(env: Envelope, size: int) -> QuarantineEntry:
    plugin, sep, reason = env.quarantine_reason.partition(": ")
    if not sep:
        plugin, reason = "", env.quarantine_reason
    return QuarantineEntry(env.queue_id, reason, plugin, env.mail_from,
                           [r.address for r in env.recipients], env.received_at, size,
                           dict(env.tags), env.peer_ip, env.helo)


class Quarantine:
    def __init__(self, root: Path) -> None:
        self.root = root

    def prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)

    def store(self, env: Envelope, data: bytes, reason: str, plugin: str = "") -> None:
        """Durably store (blocking: call in a thread). The reason travels in the envelope."""
        self.prepare()
        env.quarantine_reason = f"{plugin}: {reason}" if plugin else reason
        tmp = self.root / f".{env.queue_id}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            _write_all(fd, *encode_entry(env.to_json(), data))
            os.fdatasync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, self.root / env.queue_id)
        _fsync_dir(self.root)

    def _path(self, queue_id: str) -> Path:
        return self.root / check_queue_id(queue_id)

    def entries(self) -> list[QuarantineEntry]:
        """Every quarantined message, oldest first; only envelopes are read, not messages."""
        out = []
        try:
            paths = sorted(p for p in self.root.iterdir() if not p.name.startswith("."))
        except FileNotFoundError:
            return []
        for p in paths:
            try:
                with open(p, "rb") as f:
                    head = f.read(len(MAGIC))
                    line = f.readline(16 * 1024 * 1024)
                    size = os.fstat(f.fileno()).st_size - len(head) - len(line)
                if head != MAGIC or not line.endswith(b"\n"):
                    raise CorruptEntry("bad magic or truncated envelope")
                env = Envelope.from_json(line[:-1])
            except (OSError, CorruptEntry, ValueError, KeyError, TypeError):
                continue
            out.append(_entry(env, size))
        return out

    def read(self, queue_id: str) -> tuple[Envelope, bytes]:
        try:
            return decode_entry(self._path(queue_id).read_bytes())
        except FileNotFoundError:
            raise NotQuarantined(f"no quarantined message {queue_id}") from None

    def entry(self, queue_id: str) -> tuple[QuarantineEntry, bytes]:
        env, data = self.read(queue_id)
        return _entry(env, len(data)), data

    def delete(self, queue_id: str) -> None:
        try:
            self._path(queue_id).unlink()
        except FileNotFoundError:
            raise NotQuarantined(f"no quarantined message {queue_id}") from None

    @staticmethod
    def as_json(e: QuarantineEntry) -> str:
        return json.dumps(asdict(e))
