"""The INSTREAM client against a scripted clamd: framing, verdicts, early close, nonsense."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from builtin_plugins.scanning.clamd_client import (
    ClamdClient,
    ClamdError,
    ScanResult,
    ScanStatus,
    parse_reply,
)
from builtin_plugins.scanning.config import ClamdAddress


@pytest.mark.parametrize(("reply", "expected"), [
    (b"stream: OK\0", ScanResult(ScanStatus.CLEAN)),
    (b"stream: Eicar-Test-Signature FOUND\0", ScanResult(ScanStatus.INFECTED, "Eicar-Test-Signature")),
    (b"stream: Win.Test.EICAR_HDB-1 FOUND\n", ScanResult(ScanStatus.INFECTED, "Win.Test.EICAR_HDB-1")),
    (b"INSTREAM size limit exceeded. ERROR\0", ScanResult(ScanStatus.TOO_LARGE)),
])
def test_parse_reply(reply: bytes, expected: ScanResult) -> None:
    assert parse_reply(reply) == expected


@pytest.mark.parametrize("reply", [
    b"", b"PONG\0", b"stream: FOUND\0", b"stream: weird\0", b"Can't allocate memory ERROR\0",
])
def test_parse_reply_refuses_what_is_not_a_verdict(reply: bytes) -> None:
    with pytest.raises(ClamdError):
        parse_reply(reply)


class FakeClamd:
    """Reads the INSTREAM framing like clamd does and answers what the test says."""

    def __init__(self) -> None:
        self.streams: list[bytes] = []
        self.chunks: list[int] = []
        self.limit: int | None = None
        self.reply: bytes = b"stream: OK\0"
        self.mode = "normal"  # normal | close | garbage | silent

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            cmd = await reader.readuntil(b"\0")
            if cmd == b"zPING\0":
                writer.write(b"PONG\0")
                return
            assert cmd == b"zINSTREAM\0", cmd
            if self.mode == "close":
                return
            got = bytearray()
            while True:
                (n,) = struct.unpack(">I", await reader.readexactly(4))
                if n == 0:
                    break
                self.chunks.append(n)
                if self.limit is not None and len(got) + n > self.limit:
                    writer.write(b"INSTREAM size limit exceeded. ERROR\0")
                    await writer.drain()
                    return
                got += await reader.readexactly(n)
            self.streams.append(bytes(got))
            if self.mode == "silent":
                await asyncio.sleep(30)
            writer.write(b"x" * 10000 if self.mode == "garbage" else self.reply)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def clamd() -> AsyncIterator[tuple[FakeClamd, ClamdAddress]]:
    fake = FakeClamd()
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield fake, ClamdAddress.parse(f"tcp://127.0.0.1:{port}")
    server.close()
    await server.wait_closed()


async def test_streams_in_chunks_and_reads_the_verdict(clamd: tuple[FakeClamd, ClamdAddress]) -> None:
    fake, addr = clamd
    data = bytes(range(256)) * 1000  # 256000 bytes
    result = await ClamdClient(addr, chunk_size=65536).scan(data)
    assert result == ScanResult(ScanStatus.CLEAN)
    assert fake.streams == [data]
    assert fake.chunks == [65536, 65536, 65536, 256000 - 3 * 65536]


async def test_infected(clamd: tuple[FakeClamd, ClamdAddress]) -> None:
    fake, addr = clamd
    fake.reply = b"stream: Test.Virus FOUND\0"
    assert await ClamdClient(addr).scan(b"x") == ScanResult(ScanStatus.INFECTED, "Test.Virus")


async def test_empty_message_is_one_end_marker(clamd: tuple[FakeClamd, ClamdAddress]) -> None:
    fake, addr = clamd
    assert (await ClamdClient(addr).scan(b"")).status is ScanStatus.CLEAN
    assert fake.streams == [b""] and fake.chunks == []


async def test_size_limit_answer_before_the_end(clamd: tuple[FakeClamd, ClamdAddress]) -> None:
    fake, addr = clamd
    fake.limit = 100_000
    result = await ClamdClient(addr, chunk_size=8192).scan(b"y" * 3_000_000)
    assert result.status is ScanStatus.TOO_LARGE


async def test_close_without_verdict_is_an_error(clamd: tuple[FakeClamd, ClamdAddress]) -> None:
    fake, addr = clamd
    fake.mode = "close"
    with pytest.raises(ClamdError):
        await ClamdClient(addr).scan(b"z" * 100)


async def test_an_endless_answer_is_an_error(clamd: tuple[FakeClamd, ClamdAddress]) -> None:
    fake, addr = clamd
    fake.mode = "garbage"
    with pytest.raises(ClamdError):
        await ClamdClient(addr).scan(b"z")


async def test_nobody_listening_is_an_error() -> None:
    from tests.support.ports import free_port

    addr = ClamdAddress.parse(f"tcp://127.0.0.1:{free_port()}")
    with pytest.raises(ClamdError, match="cannot connect"):
        await ClamdClient(addr).scan(b"z")
    with pytest.raises(ClamdError):
        await ClamdClient(addr).ping()


async def test_unix_socket_and_ping(tmp_path: Path) -> None:
    fake = FakeClamd()
    path = tmp_path / "clamd.sock"
    server = await asyncio.start_unix_server(fake.handle, str(path))
    try:
        client = ClamdClient(ClamdAddress.parse(f"unix:{path}"))
        assert await client.ping()
        assert (await client.scan(b"hello")).status is ScanStatus.CLEAN
        assert fake.streams == [b"hello"]
    finally:
        server.close()
        await server.wait_closed()


def test_under_uvloop_as_the_daemon_runs() -> None:
    """The daemon runs on uvloop, whose transports are not asyncio.Transport subclasses."""
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> tuple[ScanResult, ScanResult, bool]:
        fake = FakeClamd()
        server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
        addr = ClamdAddress.parse(f"tcp://127.0.0.1:{server.sockets[0].getsockname()[1]}")
        try:
            client = ClamdClient(addr, chunk_size=4096)
            clean = await client.scan(b"a" * 50_000)
            fake.limit = 10_000
            limited = await client.scan(b"b" * 2_000_000)
            return clean, limited, await client.ping()
        finally:
            server.close()
            await server.wait_closed()

    loop = uvloop.new_event_loop()
    try:
        clean, limited, pong = loop.run_until_complete(asyncio.wait_for(scenario(), 10))
    finally:
        loop.close()
    assert clean.status is ScanStatus.CLEAN and limited.status is ScanStatus.TOO_LARGE and pong
