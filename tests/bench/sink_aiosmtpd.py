"""A bare aiosmtpd server answering 250 to everything: the peer Elemta is measured against."""

from __future__ import annotations

import asyncio
import sys

from aiosmtpd.smtp import SMTP


class Sink:
    async def handle_DATA(self, server: SMTP, session: object, envelope: object) -> str:
        return "250 OK"


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(lambda: SMTP(Sink(), hostname="sink.test", loop=loop),
                                   "127.0.0.1", port, backlog=1024)
    async with srv:
        await srv.serve_forever()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(int(sys.argv[1])))
