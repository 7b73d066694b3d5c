"""How a non-primary worker hands freshly queued messages to the primary's queue runner."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any

from elemta_core.admin.client import AdminError, AdminUnavailable, acall
from elemta_core.queue.envelope import QueueState
from elemta_core.queue.spool import Spool

log = logging.getLogger("elemta.workers")


class SubmitForwarder:
    """Stands in for the queue runner in a non-primary worker: ``submit`` is batched to the
    primary over its admin socket. A lost notice is harmless: the message is durable in
    active/, and the primary's sweep (and its recovery at start) picks it up."""

    def __init__(self, primary_socket: Path) -> None:
        self.primary_socket = primary_socket
        self._pending: list[str] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="submit-forwarder")

    async def stop(self) -> None:
        if self._pending:
            await self._flush()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def submit(self, queue_id: str) -> None:
        self._pending.append(queue_id)
        self._wake.set()

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        try:
            await acall(self.primary_socket, "queue.submit", {"ids": batch}, timeout=5)
        except (AdminUnavailable, AdminError, OSError) as e:
            log.warning("primary worker unreachable (%s); %d queued messages wait for its sweep",
                        e, len(batch))

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._flush()


async def sweep(spool: Spool, runner: Any, every: float = 15.0, older_than: float = 10.0) -> None:
    """Primary only: submit active entries nobody announced (a worker died before telling)."""
    loop = asyncio.get_running_loop()

    def stale() -> list[str]:
        cutoff = time.time() - older_than
        out = []
        for qid in spool.ids(QueueState.ACTIVE):
            try:
                if os.stat(spool.path(qid)).st_mtime < cutoff:
                    out.append(qid)
            except FileNotFoundError:
                continue
        return out

    while True:
        await asyncio.sleep(every)
        for qid in await loop.run_in_executor(None, stale):
            runner.submit(qid)
