"""The durable spool: a message is on disk before anyone is told 250.

One file per message: a magic line, the JSON envelope on one line, then the message bytes.
Writes are group-committed: sessions that finish DATA while a batch is being synced join
the next batch, so N concurrent messages cost one directory fsync (or one syncfs) instead
of N. Order per batch: write temp files -> make them durable -> rename into the queue dir ->
fsync that dir -> wake the sessions. The queue dir therefore only ever holds whole files.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import logging
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from elemta_core.config.model import SyncMode
from elemta_core.queue.envelope import Envelope, QueueState

log = logging.getLogger("elemta.spool")

MAGIC = b"ELEMTA-SPOOL 1\n"


class SpoolError(Exception):
    """A message could not be made durable; the client gets a 4xx, never 250."""

    def __init__(self, message: str, *, no_space: bool = False) -> None:
        super().__init__(message)
        self.no_space = no_space


class CorruptEntry(Exception):
    pass


@dataclass(slots=True)
class _Write:
    tmp: Path
    final: Path
    envelope: bytes
    data: bytes
    future: asyncio.Future[None]
    error: BaseException | None = None


def _libc_syncfs() -> object | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.syncfs
    except (OSError, AttributeError):
        return None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, *chunks: bytes | memoryview) -> None:
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            n = os.write(fd, view)
            view = view[n:]


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
        self._pending: list[_Write] = []
        self._wake: asyncio.Event | None = None
        self._committer: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool-commit")
        self._io = ThreadPoolExecutor(max_workers=4, thread_name_prefix="spool-io")
        self._syncfs = _libc_syncfs() if sync is SyncMode.SYNCFS else None
        self.batches = 0
        self.committed = 0

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
        self._wake = asyncio.Event()
        self._committer = asyncio.create_task(self._commit_loop(), name="spool-committer")

    async def close(self) -> None:
        if self._committer is not None:
            while self._pending:
                await asyncio.sleep(0.01)
            self._committer.cancel()
            try:
                await self._committer
            except asyncio.CancelledError:
                pass
            self._committer = None
        self._executor.shutdown(wait=True)
        self._io.shutdown(wait=True)

    async def store(self, envelope: Envelope, data: bytes,
                    state: QueueState = QueueState.ACTIVE) -> None:
        """Return once the message is durable in ``state``; raise SpoolError otherwise."""
        assert self._wake is not None, "spool not started"
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        qid = envelope.queue_id
        self._pending.append(_Write(self.tmp_dir / qid, self.path(qid, state),
                                    envelope.to_json(), data, fut))
        self._wake.set()
        await fut

    async def _commit_loop(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                try:
                    await loop.run_in_executor(self._executor, self._commit, batch)
                except Exception as e:  # noqa: BLE001 - the batch failed: fail every write in it
                    for w in batch:
                        w.error = w.error or e
                self.batches += 1
                for w in batch:
                    if w.future.done():
                        continue
                    if w.error is None:
                        self.committed += 1
                        w.future.set_result(None)
                    else:
                        w.future.set_exception(self._as_spool_error(w.error))

    @staticmethod
    def _as_spool_error(e: BaseException) -> SpoolError:
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return SpoolError("spool is full", no_space=True)
        if isinstance(e, OSError) and e.errno == errno.EROFS:
            return SpoolError("spool is read-only")
        return SpoolError(f"cannot write spool: {e}")

    def _commit(self, batch: list[_Write]) -> None:
        """Runs in the commit thread: write, make durable, rename, fsync directories."""
        written: list[_Write] = []
        for w in batch:
            try:
                fd = os.open(w.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
                try:
                    _write_all(fd, *encode_entry(w.envelope, w.data))
                    if self.sync is SyncMode.FSYNC or self._syncfs is None:
                        os.fdatasync(fd)
                finally:
                    os.close(fd)
                written.append(w)
            except OSError as e:
                w.error = e
                w.tmp.unlink(missing_ok=True)
        if not written:
            return
        if self._syncfs is not None:
            fd = os.open(self.tmp_dir, os.O_RDONLY | os.O_DIRECTORY)
            try:
                if self._syncfs(fd) != 0:  # type: ignore[operator]
                    err = ctypes.get_errno()
                    raise OSError(err, os.strerror(err))
            finally:
                os.close(fd)
        dirs: set[Path] = set()
        for w in written:
            try:
                os.rename(w.tmp, w.final)
                dirs.add(w.final.parent)
            except OSError as e:
                w.error = e
                w.tmp.unlink(missing_ok=True)
        for d in dirs:
            _fsync_dir(d)

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
            _write_all(fd, *encode_entry(env.to_json(), data))
            os.fdatasync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, self.path(env.queue_id, state))
        _fsync_dir(self.dir(state))

    def move(self, queue_id: str, src: QueueState, dst: QueueState) -> None:
        os.rename(self.path(queue_id, src), self.path(queue_id, dst))
        _fsync_dir(self.dir(dst))
        _fsync_dir(self.dir(src))

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
