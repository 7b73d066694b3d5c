"""Delivers what the spool holds: local recipients to Maildir, others to a remote transport.

The runner is at-least-once: an entry leaves the spool only after every recipient is
delivered or failed, and per-recipient state is rewritten durably after each attempt, so a
crash at any point re-delivers only what was not done.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable, Protocol

from elemta_core.delivery.maildir import DeliveryError, deliver
from elemta_core.hooks.context import DeliveryInfo, HookContext
from elemta_core.hooks.pipeline import Pipeline
from elemta_core.hooks.types import Action, HookPoint
from elemta_core.queue.envelope import Envelope, QueueState, Recipient, RecipientState
from elemta_core.queue.spool import CorruptEntry, Spool

log = logging.getLogger("elemta.queue")

DEFAULT_RETRY = (60.0, 300.0, 900.0, 3600.0, 10800.0, 21600.0)


@dataclass(frozen=True)
class AttemptResult:
    recipient: str
    ok: bool
    permanent: bool = False
    code: int | None = None
    text: str = ""


class RemoteTransport(Protocol):
    """Delivers recipients outside the local domains (SMTP/LMTP; see the delivery package)."""

    async def deliver(self, env: Envelope, data: bytes,
                      recipients: list[Recipient]) -> list[AttemptResult]: ...


class QueueRunner:
    def __init__(
        self,
        spool: Spool,
        maildir_root: Path,
        local_domains: tuple[str, ...],
        pipeline: Callable[[], Pipeline],
        *,
        concurrency: int = 8,
        retry: tuple[float, ...] = DEFAULT_RETRY,
        max_age: float = 5 * 86400,
        remote: RemoteTransport | None = None,
        on_expired: Callable[[Envelope, bytes], Awaitable[None]] | None = None,
    ) -> None:
        self.spool = spool
        self.maildir_root = maildir_root
        self.local_domains = frozenset(local_domains)
        self.pipeline = pipeline
        self.concurrency = concurrency
        self.retry = retry
        self.max_age = max_age
        self.remote = remote
        self.on_expired = on_expired
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._inflight: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._io = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="deliver")
        self.delivered = 0
        self.idle = asyncio.Event()
        self.idle.set()

    def is_local(self, address: str) -> bool:
        return address.rpartition("@")[2].lower() in self.local_domains

    async def start(self) -> None:
        """Recover: everything in active/ is delivered again, deferred/ waits its turn."""
        n = 0
        for qid, env in self.spool.scan(QueueState.ACTIVE):
            if env is not None:
                self.submit(qid)
                n += 1
        if n:
            log.info("recovered %d queued messages from the spool", n)
        for i in range(self.concurrency):
            self._tasks.append(asyncio.create_task(self._worker(), name=f"delivery-{i}"))
        self._tasks.append(asyncio.create_task(self._retry_loop(), name="queue-retry"))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except asyncio.CancelledError:
                pass
        self._tasks.clear()
        self._io.shutdown(wait=True)

    def submit(self, queue_id: str) -> None:
        if queue_id not in self._inflight:
            self._inflight.add(queue_id)
            self.idle.clear()
            self._queue.put_nowait(queue_id)

    async def _worker(self) -> None:
        while True:
            qid = await self._queue.get()
            try:
                await self.process(qid)
            except Exception:
                log.exception("delivery of %s failed unexpectedly; it stays queued", qid)
            finally:
                self._inflight.discard(qid)
                if not self._inflight:
                    self.idle.set()

    def _ctx(self, env: Envelope, info: DeliveryInfo) -> HookContext:
        return HookContext(
            session_id=env.queue_id, peer_ip=env.peer_ip, helo=env.helo or None,
            auth_user=env.auth_user, transaction_id=env.queue_id, mail_from=env.mail_from,
            recipients=[r.address for r in env.recipients], recipient=info.recipient,
            tags=dict(env.tags), delivery=info,
        )

    async def _hook(self, hook: HookPoint, env: Envelope, info: DeliveryInfo) -> Action:
        pipe = self.pipeline()
        if not pipe.has(hook):
            return Action.CONTINUE
        return (await pipe.run(hook, self._ctx(env, info))).action

    async def process(self, queue_id: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            env, data = await self.spool.aread(queue_id, QueueState.ACTIVE)
        except FileNotFoundError:
            return  # deleted or held meanwhile
        except CorruptEntry as e:
            await loop.run_in_executor(self._io, self.spool.move_aside, queue_id,
                                       QueueState.ACTIVE, str(e))
            return
        env.attempts += 1
        local = [r for r in env.pending() if self.is_local(r.address)]
        remote = [r for r in env.pending() if not self.is_local(r.address)]
        results: list[AttemptResult] = []
        for r in local:
            info = DeliveryInfo(queue_id, r.address, env.attempts, "attempt", destination="maildir")
            act = await self._hook(HookPoint.DELIVERY_ATTEMPT, env, info)
            if act is Action.REJECT:
                results.append(AttemptResult(r.address, False, True, 550, "refused by plugin"))
                continue
            if act is Action.TEMPFAIL:
                results.append(AttemptResult(r.address, False, False, 451, "deferred by plugin"))
                continue
            try:
                await loop.run_in_executor(
                    self._io, lambda r=r: deliver(self.maildir_root, r.address, data,
                                                  queue_id=queue_id, mail_from=env.mail_from))
                results.append(AttemptResult(r.address, True, code=250, text="delivered to maildir"))
            except DeliveryError as e:
                results.append(AttemptResult(r.address, False, e.permanent, 451, str(e)))
        if remote:
            if self.remote is None:
                results.extend(AttemptResult(r.address, False, False, 451,
                                             "no remote transport is configured")
                               for r in remote)
            else:
                results.extend(await self.remote.deliver(env, data, remote))
        await self._record(env, data, results)

    async def _record(self, env: Envelope, data: bytes, results: list[AttemptResult]) -> None:
        loop = asyncio.get_running_loop()
        by_addr = {r.address: r for r in env.recipients}
        for res in results:
            rcpt = by_addr.get(res.recipient)
            if rcpt is None:
                continue
            rcpt.attempts += 1
            rcpt.last_code, rcpt.last_text = res.code, res.text
            if res.ok:
                rcpt.state = RecipientState.DELIVERED
                self.delivered += 1
            elif res.permanent:
                rcpt.state = RecipientState.FAILED
            status = "delivered" if res.ok else ("failed" if res.permanent else "deferred")
            log.info("%s to=<%s> status=%s code=%s %s", env.queue_id, res.recipient, status,
                     res.code, res.text)
            await self._hook(HookPoint.DELIVERY_RESULT, env, DeliveryInfo(
                env.queue_id, res.recipient, env.attempts, status, res.code, res.text))
        if not env.pending():
            await loop.run_in_executor(self._io, self.spool.remove, env.queue_id, QueueState.ACTIVE)
            return
        age = time.time() - env.received_at
        if age >= self.max_age:
            log.warning("%s expired after %.0fs in the queue", env.queue_id, age)
            await self._hook(HookPoint.EXPIRED, env, DeliveryInfo(env.queue_id, status="expired"))
            for r in env.pending():
                r.state = RecipientState.FAILED
            await loop.run_in_executor(self._io, self.spool.rewrite_envelope, env, data,
                                       QueueState.ACTIVE)
            await loop.run_in_executor(self._io, self.spool.move, env.queue_id,
                                       QueueState.ACTIVE, QueueState.FAILED)
            if self.on_expired is not None:
                await self.on_expired(env, data)
            return
        delay = self.retry[min(env.attempts - 1, len(self.retry) - 1)]
        env.next_attempt = time.time() + delay * random.uniform(0.9, 1.1)
        env.last_error = "; ".join(f"{r.address}: {r.last_text}" for r in env.pending())
        await loop.run_in_executor(self._io, self.spool.rewrite_envelope, env, data,
                                   QueueState.ACTIVE)
        await loop.run_in_executor(self._io, self.spool.move, env.queue_id,
                                   QueueState.ACTIVE, QueueState.DEFERRED)
        await self._hook(HookPoint.DEFERRED, env, DeliveryInfo(
            env.queue_id, status="deferred", attempt=env.attempts, text=env.last_error))

    async def _retry_loop(self, every: float = 5.0) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(every)
            now = time.time()
            due = await loop.run_in_executor(self._io, lambda: [
                qid for qid, env in self.spool.scan(QueueState.DEFERRED)
                if env is not None and env.next_attempt <= now])
            for qid in due:
                try:
                    await loop.run_in_executor(self._io, self.spool.move, qid,
                                               QueueState.DEFERRED, QueueState.ACTIVE)
                except FileNotFoundError:
                    continue
                self.submit(qid)
