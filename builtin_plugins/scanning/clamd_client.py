"""clamd's INSTREAM protocol over asyncio streams.

``zINSTREAM\\0``, then chunks each prefixed by a 4-byte big-endian length, then a zero-length
chunk; clamd answers one NUL-terminated line: ``stream: OK``, ``stream: <name> FOUND`` or
``<problem> ERROR`` (``INSTREAM size limit exceeded. ERROR`` past its StreamMaxLength, after
which it may close the connection before reading the rest).
"""

from __future__ import annotations

import asyncio
import enum
import struct
from dataclasses import dataclass

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


class ClamdClient:
    """One connection per scan (clamd serves INSTREAM once per session)."""

    def __init__(self, address: ClamdAddress, chunk_size: int = 64 * 1024) -> None:
        self.address = address
        self.chunk_size = chunk_size

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            if self.address.transport is ClamdTransport.UNIX:
                return await asyncio.open_unix_connection(self.address.path, limit=MAX_REPLY)
            return await asyncio.open_connection(self.address.host, self.address.port,
                                                 limit=MAX_REPLY)
        except OSError as e:
            raise ClamdError(f"cannot connect to clamd at {self.address}: "
                             f"{e.strerror or e}") from None

    async def scan(self, data: bytes | memoryview) -> ScanResult:
        """Stream ``data`` (no copy: chunks are views) and return clamd's verdict."""
        reader, writer = await self._connect()
        try:
            view = memoryview(data)
            try:
                writer.write(b"zINSTREAM\0")
                step = self.chunk_size
                for off in range(0, len(view), step):
                    chunk = view[off:off + step]
                    writer.write(_LEN.pack(len(chunk)))
                    writer.write(chunk)
                    await writer.drain()
                writer.write(_END)
                await writer.drain()
            except (ConnectionResetError, BrokenPipeError):
                # clamd stops reading once a stream passes its limit and says why: read it.
                pass
            try:
                reply = await reader.readuntil(b"\0")
            except asyncio.IncompleteReadError as e:
                if e.partial:
                    reply = e.partial
                else:
                    raise ClamdError("clamd closed the connection without a verdict") from None
            except asyncio.LimitOverrunError:
                raise ClamdError("clamd's answer is too long to be a verdict") from None
            except (ConnectionResetError, BrokenPipeError) as e:
                raise ClamdError(f"clamd dropped the connection: {e}") from None
            return parse_reply(reply)
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass

    async def ping(self) -> bool:
        """``zPING``: True when clamd answers PONG."""
        reader, writer = await self._connect()
        try:
            writer.write(b"zPING\0")
            await writer.drain()
            return (await reader.readuntil(b"\0")).rstrip(b"\0") == b"PONG"
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            return False
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass
