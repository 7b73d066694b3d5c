"""Admin socket commands for the quarantine: list, show, release (back into the queue), delete.

Release goes through the running daemon so the message joins the live spool and queue
runner: it is made durable in ``active/`` first and only then removed from the quarantine,
so a crash in between delivers it at worst twice, never loses it.
"""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from elemta_core.message.message import Message
from elemta_core.queue.envelope import QueueState
from elemta_core.queue.quarantine import Quarantine, check_queue_id

if TYPE_CHECKING:
    from elemta_core.plugins.api import AdminHandler
    from elemta_core.queue.runner import QueueRunner
    from elemta_core.queue.spool import Spool

__all__ = ["QuarantineCommands", "register_quarantine_commands"]


class QuarantineCommands:
    def __init__(self, quarantine: Quarantine, spool: Spool, runner: QueueRunner) -> None:
        self.quarantine = quarantine
        self.spool = spool
        self.runner = runner
        self._lock = asyncio.Lock()  # one release or delete at a time: no double release

    @staticmethod
    async def _io(fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    async def entries(self, args: dict[str, Any]) -> dict[str, Any]:
        entries = await self._io(self.quarantine.entries)
        return {"entries": [asdict(e) for e in entries]}

    async def show(self, args: dict[str, Any]) -> dict[str, Any]:
        qid = check_queue_id(args.get("id"))
        entry, data = await self._io(self.quarantine.entry, qid)
        out: dict[str, Any] = {
            "entry": asdict(entry),
            "headers": Message(data).headers,
        }
        if args.get("raw"):
            out["message_b64"] = base64.b64encode(data).decode("ascii")
        return out

    async def release(self, args: dict[str, Any]) -> dict[str, Any]:
        qid = check_queue_id(args.get("id"))
        async with self._lock:
            env, data = await self._io(self.quarantine.read, qid)
            for state in QueueState:
                if await self._io(self.spool.path(qid, state).exists):
                    raise ValueError(f"{qid} is already in the queue ({state.value})")
            env.tags["quarantine.released"] = f"{time.time():.0f}"
            env.tags["quarantine.reason"] = env.quarantine_reason
            env.quarantine_reason = ""
            env.attempts, env.next_attempt, env.last_error = 0, 0.0, ""
            await self.spool.store(env, data, QueueState.ACTIVE)
            await self._io(self.quarantine.delete, qid)
        self.runner.submit(qid)
        return {"released": qid}

    async def delete(self, args: dict[str, Any]) -> dict[str, Any]:
        qid = check_queue_id(args.get("id"))
        async with self._lock:
            await self._io(self.quarantine.delete, qid)
        return {"deleted": qid}


def register_quarantine_commands(commands: dict[str, AdminHandler], quarantine: Quarantine,
                                 spool: Spool, runner: QueueRunner) -> QuarantineCommands:
    """Add ``quarantine.list|show|release|delete`` to the admin command table."""
    q = QuarantineCommands(quarantine, spool, runner)
    commands.update({"quarantine.list": q.entries, "quarantine.show": q.show,
                     "quarantine.release": q.release, "quarantine.delete": q.delete})
    return q
