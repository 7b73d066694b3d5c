"""SIGKILL of the sending Elemta mid-queue: after a restart every message still arrives."""

from __future__ import annotations

import asyncio
import re
import smtplib
import time
from typing import Any

from tests.integration.delivery.conftest import RELAY
from tests.support.server import ServerProcess
from tests.support.smtp_sink import Sink, SinkHandler

N = 40


class SlowHandler(SinkHandler):
    """Takes a while per message, so the kill lands while deliveries are in flight."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(0.05)
        return await super().handle_DATA(server, session, envelope)


def test_sigkill_mid_queue_loses_nothing(elemta_server) -> None:
    with Sink(SlowHandler()) as sink:
        srv: ServerProcess = elemta_server(server=RELAY, delivery={
            "concurrency": 4, "transports": {"remote.test": f"smtp:[127.0.0.1]:{sink.port}"}},
            queue={"destination_concurrency": 2})
        with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as s:
            s.ehlo("client.test")
            for i in range(N):
                s.sendmail("alice@localhost", [f"u{i}@remote.test"],
                           f"Subject: n{i}\r\n\r\nbody {i}\r\n".encode())
        deadline = time.monotonic() + 10
        while len(sink.messages) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        srv.kill()
        before = len(sink.messages)
        assert 0 < before < N, "the kill should land mid-queue"
        srv.start()
        deadline = time.monotonic() + 30
        while len({m.rcpt_tos[0] for m in sink.messages}) < N and time.monotonic() < deadline:
            time.sleep(0.05)
        got = {m.rcpt_tos[0] for m in sink.messages}
        subjects = {re.search(rb"Subject: (n\d+)", m.data).group(1) for m in sink.messages}  # type: ignore[union-attr]
    assert got == {f"u{i}@remote.test" for i in range(N)}, srv.log()
    assert len(subjects) == N
    # At-least-once: only what was in flight at the kill may come twice.
    assert len(sink.messages) - N <= 4
    assert "recovered" in srv.log()
