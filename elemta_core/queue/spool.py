"""The durable spool: a message is on disk before anyone is told 250.

One file per message: a magic line, the JSON envelope on one line, then the message bytes.
Writes are group-committed (:mod:`elemta_core.queue.durable`): sessions that finish DATA
while a batch is being synced join the next batch, and the queue dir only ever holds whole
files.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from elemta_core.config.model import SyncMode
from elemta_core.queue.durable import GroupCommitter, fsync_dir, write_all
from elemta_core.queue.envelope import Envelope, QueueState

# Kept for the modules that used the spool's own names.
_fsync_dir = fsync_dir
_write_all = write_all

log = logging.getLogger("elemta.spool")

MAGIC = b"ELEMTA-SPOOL 1\n"


class SpoolError(Exception):
    """A message could not be made durable; the client gets a 4xx, never 250."""

    def __init__(self, message: str, *, no_space: bool = False) -> None:
        super().__init__(message)
        self.no_space = no_space


class CorruptEntry(Exception):
    pass


def encode_entry(envelope: bytes, data: bytes) -> tuple[bytes, ...]:
    return (MAGIC, envelope, b"\n", data)


def decode_entry(blob: bytes) -> tuple[Envelope, bytes]:
    if not blob.startswith(MAGIC):
        raise CorruptEntry("bad magic")
    nl = blob.find(b"\n", len(MAGIC))
    if nl < 0:
        raise CorruptEntry("truncated envelope")
    try:
        env = Envelope.from_json(blob[len(MAGIC):nl])
    except (ValueError, KeyError, TypeError) as e:
        raise CorruptEntry(f"bad envelope: {e}") from None
    return env, blob[nl + 1:]


class Spool:
    def __init__(self, root: Path, sync: SyncMode = SyncMode.FSYNC, max_batch: int = 256,
                 tmp_name: str = "tmp") -> None:
        self.root = root
        self.sync = sync
        self.max_batch = max_batch
        # One temp dir per writer process: start-up clears it, which must not touch the
        # unfinished writes of another worker sharing the spool.
        self.tmp_dir = root / tmp_name
        self.corrupt_dir = root / "corrupt"
        self.committer = GroupCommitter(sync, max_batch, "spool-commit")
        self._io = ThreadPoolExecutor(max_workers=4, thread_name_prefix="spool-io")

    @property
    def batches(self) -> int:
        return self.committer.batches

    @property
    def committed(self) -> int:
        return self.committer.committed

    def dir(self, state: QueueState) -> Path:
        return self.root / state.value

    def path(self, queue_id: str, state: QueueState = QueueState.ACTIVE) -> Path:
        return self.dir(state) / queue_id

    def prepare(self) -> None:
        for d in [self.tmp_dir, self.corrupt_dir, *(self.dir(s) for s in QueueState)]:
            d.mkdir(parents=True, exist_ok=True)
            os.chmod(d, 0o700)
        # Temp files were never acknowledged: a crash mid-write leaves nothing to keep.
        for p in self.tmp_dir.iterdir():
            p.unlink(missing_ok=True)

    async def start(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._io, self.prepare)
        self.committer.start()

    async def close(self) -> None:
        await self.committer.close()
        self._io.shutdown(wait=True)

    async def store(self, envelope: Envelope, data: bytes,
                    state: QueueState = QueueState.ACTIVE) -> None:
        """Return once the message is durable in ``state``; raise SpoolError otherwise."""
        qid = envelope.queue_id
        try:
            await self.committer.write(self.tmp_dir / qid, self.path(qid, state),
                                       *encode_entry(envelope.to_json(), data))
        except OSError as e:
            raise self._as_spool_error(e) from e

    @staticmethod
    def _as_spool_error(e: BaseException) -> SpoolError:
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return SpoolError("spool is full", no_space=True)
        if isinstance(e, OSError) and e.errno == errno.EROFS:
            return SpoolError("spool is read-only")
        return SpoolError(f"cannot write spool: {e}")

    # -- reading and moving (off the event loop through run_in_executor where it matters) --

    def read(self, queue_id: str, state: QueueState = QueueState.ACTIVE) -> tuple[Envelope, bytes]:
        return decode_entry(self.path(queue_id, state).read_bytes())

    async def aread(self, queue_id: str,
                    state: QueueState = QueueState.ACTIVE) -> tuple[Envelope, bytes]:
        return await asyncio.get_running_loop().run_in_executor(self._io, self.read, queue_id, state)

    def rewrite_envelope(self, env: Envelope, data: bytes, state: QueueState) -> None:
        """Durably replace a queued entry (per-recipient state after a delivery attempt)."""
        tmp = self.tmp_dir / (env.queue_id + ".upd")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            write_all(fd, *encode_entry(env.to_json(), data))
            os.fdatasync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, self.path(env.queue_id, state))
        fsync_dir(self.dir(state))

    def move(self, queue_id: str, src: QueueState, dst: QueueState) -> None:
        os.rename(self.path(queue_id, src), self.path(queue_id, dst))
        fsync_dir(self.dir(dst))
        fsync_dir(self.dir(src))

    def remove(self, queue_id: str, state: QueueState = QueueState.ACTIVE) -> None:
        # Not fsynced: if the unlink is lost in a crash the message is delivered again
        # (at-least-once), never lost.
        self.path(queue_id, state).unlink(missing_ok=True)

    def move_aside(self, queue_id: str, state: QueueState, why: str) -> None:
        dst = self.corrupt_dir / f"{state.value}-{queue_id}"
        shutil.move(str(self.path(queue_id, state)), dst)
        log.error("spool entry %s/%s is corrupt (%s): moved to %s", state.value, queue_id, why, dst)

    def ids(self, state: QueueState) -> list[str]:
        try:
            return sorted(p.name for p in self.dir(state).iterdir() if not p.name.startswith("."))
        except FileNotFoundError:
            return []

    def scan(self, state: QueueState) -> Iterator[tuple[str, Envelope | None]]:
        """Envelopes of every entry in ``state``; corrupt entries are moved aside, not raised."""
        for qid in self.ids(state):
            p = self.path(qid, state)
            try:
                with open(p, "rb") as f:
                    head = f.read(len(MAGIC))
                    line = f.readline(16 * 1024 * 1024)
                if head != MAGIC or not line.endswith(b"\n"):
                    raise CorruptEntry("bad magic or truncated envelope")
                yield qid, Envelope.from_json(line[:-1])
            except FileNotFoundError:
                continue
            except (CorruptEntry, ValueError, KeyError, TypeError) as e:
                self.move_aside(qid, state, str(e))
                yield qid, None
