"""Queue commands on the admin socket: ``queue.list``, ``show``, ``flush``, ``hold``,
``release``, ``delete``. The CLI (:mod:`elemta_core.cli.queue`) is their usual client."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from elemta_core.message.message import Message
from elemta_core.plugins.api import AdminHandler
from elemta_core.queue.envelope import Envelope, QueueState
from elemta_core.queue.runner import QueueRunner
from elemta_core.queue.spool import CorruptEntry

_QUEUE_ID = re.compile(r"^[0-9A-F]{8,40}$")


def _queue_id(args: dict[str, Any], required: bool = True) -> str | None:
    qid = args.get("id")
    if qid is None or qid == "":
        if required:
            raise ValueError("give a queue id")
        return None
    if not isinstance(qid, str) or not _QUEUE_ID.match(qid):
        raise ValueError(f"{qid!r} is not a queue id")
    return qid


def summary(qid: str, state: QueueState, env: Envelope, size: int | None = None) -> dict[str, Any]:
    now = time.time()
    return {
        "id": qid, "state": state.value, "from": env.mail_from,
        "recipients": [{"address": r.address, "state": r.state.value, "attempts": r.attempts,
                        "last_code": r.last_code, "last_text": r.last_text}
                       for r in env.recipients],
        "size": size, "received_at": env.received_at, "age": round(now - env.received_at, 1),
        "attempts": env.attempts,
        "next_attempt": env.next_attempt if state is QueueState.DEFERRED else None,
        "last_error": env.last_error,
    }


def register(commands: dict[str, AdminHandler], runner: QueueRunner) -> None:
    spool = runner.spool

    def listing(states: list[QueueState]) -> list[dict[str, Any]]:
        rows = []
        for st in states:
            for qid, env in spool.scan(st):
                if env is None:
                    continue
                try:
                    size = spool.path(qid, st).stat().st_size
                except FileNotFoundError:
                    continue
                rows.append(summary(qid, st, env, size))
        return rows

    async def queue_list(args: dict[str, Any]) -> dict[str, Any]:
        want = args.get("state")
        if want is not None and want not in [s.value for s in QueueState]:
            raise ValueError(f"unknown queue state {want!r}; use one of "
                             + ", ".join(s.value for s in QueueState))
        states = [QueueState(want)] if want else list(QueueState)
        rows = await asyncio.get_running_loop().run_in_executor(None, listing, states)
        return {"messages": rows, "counts": {s.value: len(spool.ids(s)) for s in QueueState}}

    async def queue_show(args: dict[str, Any]) -> dict[str, Any]:
        qid = _queue_id(args)
        assert qid is not None
        st = runner.locate(qid)
        if st is None:
            raise LookupError(f"no message {qid} in the queue")
        try:
            env, data = await spool.aread(qid, st)
        except FileNotFoundError:
            raise LookupError(f"message {qid} left the queue meanwhile") from None
        except CorruptEntry as e:
            raise ValueError(f"message {qid} is corrupt: {e}") from None
        out = summary(qid, st, env, len(data))
        out["headers"] = Message(data).headers
        out["tags"] = env.tags
        return out

    async def queue_flush(args: dict[str, Any]) -> dict[str, Any]:
        return {"flushed": await runner.flush(_queue_id(args, required=False))}

    async def queue_hold(args: dict[str, Any]) -> dict[str, Any]:
        qid = _queue_id(args)
        assert qid is not None
        return {"id": qid, "result": await runner.hold(qid)}

    async def queue_release(args: dict[str, Any]) -> dict[str, Any]:
        qid = _queue_id(args)
        assert qid is not None
        return {"id": qid, "result": await runner.release(qid)}

    async def queue_delete(args: dict[str, Any]) -> dict[str, Any]:
        qid = _queue_id(args)
        assert qid is not None
        return {"id": qid, "result": await runner.delete(qid)}

    commands.update({
        "queue.list": queue_list, "queue.show": queue_show, "queue.flush": queue_flush,
        "queue.hold": queue_hold, "queue.release": queue_release, "queue.delete": queue_delete,
    })
