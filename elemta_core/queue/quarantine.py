"""The quarantine area: messages a plugin set aside, with the reason, until an operator acts."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from elemta_core.queue.envelope import Envelope
from elemta_core.queue.spool import _fsync_dir, _write_all, decode_entry, encode_entry


@dataclass
class QuarantineEntry:
    queue_id: str
    reason: str
    plugin: str
    mail_from: str
    recipients: list[str]
    received_at: float
    size: int


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

    def entries(self) -> list[QuarantineEntry]:
        out = []
        for p in sorted(self.root.glob("[!.]*")):
            try:
                env, data = decode_entry(p.read_bytes())
            except Exception:
                continue
            plugin, _, reason = env.quarantine_reason.partition(": ")
            if not reason:
                plugin, reason = "", env.quarantine_reason
            out.append(QuarantineEntry(env.queue_id, reason, plugin, env.mail_from,
                                       [r.address for r in env.recipients], env.received_at,
                                       len(data)))
        return out

    def read(self, queue_id: str) -> tuple[Envelope, bytes]:
        if "/" in queue_id or queue_id.startswith("."):
            raise FileNotFoundError(queue_id)
        return decode_entry((self.root / queue_id).read_bytes())

    def delete(self, queue_id: str) -> None:
        if "/" in queue_id or queue_id.startswith("."):
            raise FileNotFoundError(queue_id)
        (self.root / queue_id).unlink()

    @staticmethod
    def as_json(e: QuarantineEntry) -> str:
        return json.dumps(asdict(e))
