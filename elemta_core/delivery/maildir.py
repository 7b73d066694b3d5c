"""Local delivery into Maildir (one directory per domain and user), durable before success."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import socket
import time
from pathlib import Path

from elemta_core.config.model import SyncMode
from elemta_core.message.message import format_header
from elemta_core.queue.durable import GroupCommitter

_counter = itertools.count()
_UNSAFE = re.compile(r"[^a-z0-9!#$%&'*+\-=?^_`{|}~.]")


class DeliveryError(Exception):
    def __init__(self, text: str, permanent: bool = False) -> None:
        super().__init__(text)
        self.permanent = permanent


def mailbox_path(root: Path, address: str) -> Path:
    """Where ``user@domain`` lives; the name can never escape ``root``."""
    local, _, domain = address.rpartition("@")
    local = _UNSAFE.sub("_", local.lower()).strip(".") or "_"
    domain = _UNSAFE.sub("_", domain.lower()).strip(".") or "_"
    return root / domain / local


def ensure_maildir(box: Path) -> None:
    for sub in ("tmp", "new", "cur"):
        (box / sub).mkdir(parents=True, exist_ok=True, mode=0o700)


def deliver(root: Path, address: str, data: bytes, *, queue_id: str, mail_from: str) -> Path:
    """Write one copy for ``address``; returns the file in new/. Blocking: call in a thread."""
    box = mailbox_path(root, address)
    try:
        ensure_maildir(box)
        name = (f"{time.time_ns() // 1000}.P{os.getpid()}Q{queue_id}N{next(_counter)}"
                f".{socket.gethostname().replace('/', '_')}")
        tmp = box / "tmp" / name
        head = format_header("Return-Path", f"<{mail_from}>") + format_header("Delivered-To", address)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(head + data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        final = box / "new" / name
        os.rename(tmp, final)
        dfd = os.open(box / "new", os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        return final
    except OSError as e:
        raise DeliveryError(f"maildir write failed: {e.strerror or e}") from e


class MaildirWriter:
    """Group-committed local delivery: concurrent deliveries share their syncs.

    The same files and guarantees as :func:`deliver` (the copy is in ``new/`` and durable
    before success is reported), at a fraction of the fsyncs under load. Mailbox directories
    known to exist are remembered (as strings: path arithmetic per message showed in profiles).
    """

    def __init__(self, root: Path, sync: SyncMode = SyncMode.FSYNC, max_batch: int = 256) -> None:
        self.root = root
        self.committer = GroupCommitter(sync, max_batch, "maildir-commit")
        self._boxes: dict[str, tuple[str, str]] = {}  # address -> (tmp/, new/) of a made box
        self._suffix = f".P{os.getpid()}Q"
        self._host = socket.gethostname().replace("/", "_")

    def start(self) -> None:
        self.committer.start()

    async def close(self) -> None:
        await self.committer.close()

    async def deliver(self, address: str, data: bytes, *, queue_id: str,
                      mail_from: str) -> Path:
        name = f"{time.time_ns() // 1000}{self._suffix}{queue_id}N{next(_counter)}.{self._host}"
        head = format_header("Return-Path", f"<{mail_from}>") + format_header("Delivered-To", address)
        dirs = self._boxes.get(address)
        try:
            if dirs is None:
                box = mailbox_path(self.root, address)
                await asyncio.get_running_loop().run_in_executor(None, ensure_maildir, box)
                dirs = f"{box}/tmp/", f"{box}/new/"
                if len(self._boxes) >= 10_000:
                    self._boxes.clear()
                self._boxes[address] = dirs
            await self.committer.write(dirs[0] + name, dirs[1] + name, head, data)
        except OSError as e:
            self._boxes.pop(address, None)
            raise DeliveryError(f"maildir write failed: {e.strerror or e}") from e
        return Path(dirs[1] + name)
