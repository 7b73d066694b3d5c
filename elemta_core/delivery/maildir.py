"""Local delivery into Maildir (one directory per domain and user), durable before success."""

from __future__ import annotations

import itertools
import os
import re
import socket
import time
from pathlib import Path

from elemta_core.message.message import format_header

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
