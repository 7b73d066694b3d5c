"""Small raw SMTP clients for load: every reply code is seen, nothing is retried behind our back."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

TIMEOUT = 10.0


async def _reply(reader: asyncio.StreamReader) -> int:
    """One (possibly multi-line) reply's code."""
    while True:
        line = await asyncio.wait_for(reader.readline(), TIMEOUT)
        if len(line) < 4:
            raise ConnectionError(f"connection closed mid-reply: {line!r}")
        if line[3:4] != b"-":
            return int(line[:3])


@dataclass
class Held:
    """Connections that got a 220 and are being kept open."""

    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def close(self) -> None:
        for w in self.writers:
            w.close()
        for w in self.writers:
            try:
                await w.wait_closed()
            except OSError:
                pass
        self.writers.clear()


async def greet(port: int, held: Held | None = None) -> int:
    """Connect and read the greeting; keep the connection in ``held`` when it was 220."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)
    try:
        code = await _reply(reader)
    except (ConnectionError, asyncio.IncompleteReadError):
        code = 0
    if code == 220 and held is not None:
        held.writers.append(writer)
        return code
    if code == 220:
        writer.write(b"QUIT\r\n")
        try:
            await _reply(reader)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return code


async def send(port: int, sender: str, rcpt: str, count: int = 1) -> list[int]:
    """One session sending ``count`` messages; per message the first non-2xx/3xx code or 250."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)
    out: list[int] = []
    try:
        if await _reply(reader) != 220:
            return [421] * count
        writer.write(b"EHLO load.test\r\n")
        await _reply(reader)
        for i in range(count):
            out.append(await _transaction(reader, writer, sender, rcpt, i))
        writer.write(b"QUIT\r\n")
        await _reply(reader)
    finally:
        writer.close()
    return out


async def _transaction(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       sender: str, rcpt: str, i: int) -> int:
    writer.write(f"MAIL FROM:<{sender}>\r\n".encode())
    code = await _reply(reader)
    if code != 250:
        return code
    writer.write(f"RCPT TO:<{rcpt}>\r\n".encode())
    code = await _reply(reader)
    if code != 250:
        writer.write(b"RSET\r\n")
        await _reply(reader)
        return code
    writer.write(b"DATA\r\n")
    code = await _reply(reader)
    if code != 354:
        return code
    writer.write(f"Subject: load {i}\r\nFrom: <{sender}>\r\n\r\nbody {i}\r\n.\r\n".encode())
    return await _reply(reader)
