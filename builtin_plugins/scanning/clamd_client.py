"""clamd's INSTREAM protocol, on an asyncio connection (a small Protocol, not streams: see
``_Session`` for why).

``zINSTREAM\\0``, then chunks each prefixed by a 4-byte big-endian length, then a zero-length
chunk; clamd answers one NUL-terminated line: ``stream: OK``, ``stream: <name> FOUND`` or
``<problem> ERROR`` (``INSTREAM size limit exceeded. ERROR`` past its StreamMaxLength, after
which it closes the connection without reading the rest: the client then stops sending and
still reads the answer, which a reset must not swallow).
"""

from __future__ import annotations

import asyncio
import enum
import struct
from dataclasses import dataclass
from typing import Any, cast

from builtin_plugins.scanning.config import ClamdAddress, ClamdTransport

__all__ = ["ClamdClient", "ClamdError", "ScanResult", "ScanStatus"]

_LEN = struct.Struct(">I")
_END = _LEN.pack(0)
#: A clamd reply is one short line; anything longer is not clamd.
MAX_REPLY = 4096


class ClamdError(Exception):
    """clamd could not be reached or answered something that is not a verdict."""


class ScanStatus(enum.Enum):
    CLEAN = "clean"
    INFECTED = "infected"
    TOO_LARGE = "too_large"  # past clamd's StreamMaxLength


@dataclass(frozen=True, slots=True)
class ScanResult:
    status: ScanStatus
    virus: str = ""


def parse_reply(reply: bytes) -> ScanResult:
    """Turn clamd's answer line into a result; anything unexpected is a ClamdError."""
    text = reply.rstrip(b"\0\r\n").decode("utf-8", "replace")
    if text.endswith(" ERROR"):
        if "size limit" in text.lower():
            return ScanResult(ScanStatus.TOO_LARGE)
        raise ClamdError(f"clamd: {text}")
    _, sep, verdict = text.partition(": ")
    if not sep:
        raise ClamdError(f"clamd answered {text[:200]!r}")
    if verdict == "OK":
        return ScanResult(ScanStatus.CLEAN)
    if verdict.endswith(" FOUND") and len(verdict) > len(" FOUND"):
        return ScanResult(ScanStatus.INFECTED, verdict[: -len(" FOUND")])
    raise ClamdError(f"clamd answered {text[:200]!r}")


class _Session(asyncio.Protocol):
    """One clamd connection: keeps every byte clamd sent, even when it then resets.

    clamd answers "size limit exceeded" and closes with our data unread, so the kernel sends
    a reset; a StreamReader would then raise instead of returning the answer it already has.
    """

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.reply = bytearray()
        self.answered: asyncio.Future[None] = loop.create_future()
        self._writable = asyncio.Event()
        self._writable.set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as such.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.reply += data
        if (b"\0" in data or len(self.reply) > MAX_REPLY) and not self.answered.done():
            self.answered.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._writable.set()
        if not self.answered.done():
            self.answered.set_result(None)

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    @property
    def closed(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    async def send(self, *parts: bytes | memoryview) -> bool:
        """Write with flow control; False once clamd has answered or gone (stop sending)."""
        if self.answered.done() or self.closed:
            return False
        assert self.transport is not None
        for part in parts:
            self.transport.write(part)
        if not self._writable.is_set():
            waiter: asyncio.Future[Any] = asyncio.ensure_future(self._writable.wait())
            either: set[asyncio.Future[Any]] = {waiter, self.answered}
            try:
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
        return not (self.answered.done() or self.closed)

    def verdict(self) -> bytes:
        if len(self.reply) > MAX_REPLY:
            raise ClamdError("clamd's answer is too long to be a verdict")
        end = self.reply.find(b"\0")
        if end < 0 and not self.reply:
            raise ClamdError("clamd closed the connection without a verdict")
        return bytes(self.reply if end < 0 else self.reply[: end + 1])

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class ClamdClient:
    """One connection per scan (clamd serves INSTREAM once per session)."""

    def __init__(self, address: ClamdAddress, chunk_size: int = 64 * 1024) -> None:
        self.address = address
        self.chunk_size = chunk_size

    async def _connect(self) -> _Session:
        loop = asyncio.get_running_loop()
        try:
            if self.address.transport is ClamdTransport.UNIX:
                _, session = await loop.create_unix_connection(_Session, self.address.path)
            else:
                _, session = await loop.create_connection(_Session, self.address.host,
                                                          self.address.port)
        except OSError as e:
            raise ClamdError(f"cannot connect to clamd at {self.address}: "
                             f"{e.strerror or e}") from None
        return session

    async def scan(self, data: bytes | memoryview) -> ScanResult:
        """Stream ``data`` (no copy: chunks are views) and return clamd's verdict."""
        session = await self._connect()
        try:
            view = memoryview(data)
            step = self.chunk_size
            if await session.send(b"zINSTREAM\0"):
                for off in range(0, len(view), step):
                    chunk = view[off:off + step]
                    if not await session.send(_LEN.pack(len(chunk)), chunk):
                        break  # clamd answered early (its size limit) or went away
                else:
                    await session.send(_END)
            await session.answered
            return parse_reply(session.verdict())
        finally:
            session.close()

    async def ping(self) -> bool:
        """``zPING``: True when clamd answers PONG."""
        session = await self._connect()
        try:
            await session.send(b"zPING\0")
            await session.answered
            return session.verdict().rstrip(b"\0") == b"PONG"
        except ClamdError:
            return False
        finally:
            session.close()
