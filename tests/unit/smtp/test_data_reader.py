"""The chunked DATA reader against aiosmtpd's semantics, through a real protocol on a socket."""

from __future__ import annotations

import asyncio

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from elemta_core.smtp.protocol import ElemtaSMTP


class Capture:
    def __init__(self) -> None:
        self.got: list[bytes] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.got.append(envelope.original_content)
        return "250 OK"

    # the parts of Elemta's SMTPHandler that ElemtaSMTP calls
    def admit(self, proto: object) -> bool:
        return True

    def released(self, proto: object) -> None:
        pass

    async def on_data_start(self, proto: object) -> None:
        return None


class Proto(ElemtaSMTP):
    async def _handle_client(self) -> None:  # no Elemta handler: plain aiosmtpd session
        await SMTP._handle_client(self)


async def session(stream: bytes, *, size: int = 10_000, line: int = 1000,
                  chunk: int | None = None, more: int = 0) -> tuple[list[bytes], bytes]:
    cap = Capture()
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(
        lambda: Proto(cap, hostname="t", loop=loop, data_size_limit=size, max_commands=100,
                      max_bad_commands=10, line_length_limit=line, command_size_limit=512),
        "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    r, w = await asyncio.open_connection("127.0.0.1", port)
    await r.readline()
    for cmd in (b"EHLO c", b"MAIL FROM:<a@b.c>", b"RCPT TO:<d@e.f>", b"DATA"):
        w.write(cmd + b"\r\n")
        while (await r.readline())[3:4] == b"-":
            pass
    if chunk:
        for i in range(0, len(stream), chunk):
            w.write(stream[i:i + chunk])
            await w.drain()
            await asyncio.sleep(0)
    else:
        w.write(stream)
    reply = await asyncio.wait_for(r.readline(), 10)
    for _ in range(more):  # replies to commands pipelined behind the data
        reply += await asyncio.wait_for(r.readline(), 10)
    w.close()
    srv.close()
    return cap.got, reply


@pytest.mark.parametrize("chunk", [None, 1, 2, 3, 7])
async def test_end_of_data_only_at_crlf_dot_crlf_in_any_split(chunk: int | None) -> None:
    body = b"a\r\n..dotted\r\nx\n.\ny\r.\r\n.z\r\n"
    got, reply = await session(body + b".\r\n", chunk=chunk)
    assert reply.startswith(b"250")
    assert got == [b"a\r\n.dotted\r\nx\n.\ny\r.\r\nz\r\n"]


async def test_empty_message() -> None:
    got, reply = await session(b".\r\n")
    assert reply.startswith(b"250") and got == [b""]


async def test_size_and_line_limits() -> None:
    got, reply = await session(b"x" * 200 + b"\r\n.\r\n", size=100)
    assert reply.startswith(b"552") and got == []
    got, reply = await session(b"y" * 50 + b"\r\n.\r\n", line=40)
    assert reply.startswith(b"500") and got == []
    got, reply = await session(b"z" * 38 + b"\r\n.\r\n", line=40)
    assert reply.startswith(b"250") and got == [b"z" * 38 + b"\r\n"]


@pytest.mark.parametrize("chunk", [None, 5, 4096])
async def test_many_lines_ending_in_a_full_stop(chunk: int | None) -> None:
    body = b"".join(b"Sentence number %d.\r\n" % i for i in range(3000))
    got, reply = await session(body + b".\r\n", size=1 << 20, chunk=chunk)
    assert reply.startswith(b"250") and got == [body]


@pytest.mark.parametrize("chunk", [None, 1, 3])
async def test_commands_pipelined_behind_the_data_are_kept(chunk: int | None) -> None:
    got, reply = await session(b"hi\r\n.\r\nNOOP\r\nQUIT\r\n", chunk=chunk, more=2)
    assert got == [b"hi\r\n"]
    assert reply.split(b"\r\n")[:3] == [b"250 2.0.0 OK", b"250 2.0.0 OK", b"221 2.0.0 Bye"]


@pytest.mark.parametrize("chunk", [None, 2, 7])
async def test_over_the_limit_read_to_the_end_in_any_split(chunk: int | None) -> None:
    got, reply = await session(b"line\r\n" * 100 + b".\r\nQUIT\r\n", size=50, chunk=chunk, more=1)
    assert got == []
    assert reply.startswith(b"552") and reply.split(b"\r\n")[1].startswith(b"221")
    got, reply = await session(b"x" * 48 + b"\r\n.\r\n", size=50)  # exactly the limit
    assert reply.startswith(b"250") and got == [b"x" * 48 + b"\r\n"]
