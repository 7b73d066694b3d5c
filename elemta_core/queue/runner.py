"""The scheduler: delivers what the spool holds, retries what it must, bounces what fails.

At-least-once: an entry leaves the spool only after every recipient is delivered or
failed (and any DSN is itself durably queued); per-recipient state is rewritten durably
after each attempt, so a crash (SIGKILL included) re-delivers only what was not done.
On start, ``active/`` is delivered again and ``deferred/`` is put back on the timer.

Each attempt routes the pending recipients (Maildir, transport rule, relayhost or MX),
groups them per destination and delivers the groups concurrently; per-destination
limits and connection reuse live in :mod:`elemta_core.delivery.remote`.

Queue and delivery hooks: ``delivery_attempt`` (per recipient, may refuse or defer),
``delivery_result`` (per recipient), ``deferred``, ``bounced``, ``expired`` (per message)
and ``queued`` (for the DSNs made here; the SMTP handler calls it for received mail).
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from elemta_core.delivery.bounce import NoticeKind, RecipientStatus, build_dsn, should_notify
from elemta_core.delivery.maildir import DeliveryError, MaildirWriter
from elemta_core.delivery.result import AttemptResult
from elemta_core.delivery.transports import LOCAL, Kind, Route, Router
from elemta_core.hooks.context import DeliveryInfo, HookContext
from elemta_core.hooks.pipeline import Pipeline
from elemta_core.hooks.types import Action, HookPoint
from elemta_core.message.message import Message, received_hops
from elemta_core.queue.config import QueueConfig
from elemta_core.queue.envelope import (
    Envelope,
    QueueState,
    Recipient,
    RecipientState,
    new_queue_id,
)
from elemta_core.queue.spool import CorruptEntry, Spool

if TYPE_CHECKING:
    from prometheus_client import Counter

    from elemta_core.config.loader import Config
    from elemta_core.delivery.mx import DnsLookup
    from elemta_core.metrics import Metrics

__all__ = ["AttemptResult", "QueueRunner", "RemoteTransport", "Schedule"]

log = logging.getLogger("elemta.queue")

DEFAULT_RETRY = (60.0, 300.0, 900.0, 3600.0, 10800.0, 21600.0)
DELAY_NOTIFIED_TAG = "queue.delay_notified"


class RemoteTransport(Protocol):
    """Delivers one group of recipients to one destination (SMTP, LMTP)."""

    async def deliver(self, route: Route, mail_from: str, recipients: list[str],
                      data: bytes) -> list[AttemptResult]: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class Schedule:
    """When to retry and when to give up."""

    retry: tuple[float, ...] = DEFAULT_RETRY
    jitter: float = 0.1
    max_age: float = 5 * 86400
    delay_warning: float | None = None
    max_hops: int = 50
    keep_failed: bool = False

    @classmethod
    def from_config(cls, q: QueueConfig) -> Schedule:
        return cls(q.retry_seconds, q.jitter, q.max_age_seconds, q.delay_warning_seconds,
                   q.max_hops, q.keep_failed)

    def next_delay(self, attempts: int, rng: random.Random) -> float:
        """The wait after attempt number ``attempts`` (1-based); the last step repeats."""
        base = self.retry[min(max(attempts, 1) - 1, len(self.retry) - 1)]
        return base * rng.uniform(1 - self.jitter, 1 + self.jitter)


def _span(seconds: float) -> str:
    for unit, n in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= n:
            return f"{seconds / n:.1f} {unit}"
    return f"{seconds:.0f} seconds"


class QueueRunner:
    def __init__(
        self,
        spool: Spool,
        maildir_root: Path,
        local_domains: tuple[str, ...],
        pipeline: Callable[[], Pipeline],
        *,
        concurrency: int = 8,
        schedule: Schedule | None = None,
        router: Router | None = None,
        remote: RemoteTransport | None = None,
        hostname: str = "localhost",
        rng: random.Random | None = None,
        maildir: MaildirWriter | None = None,
    ) -> None:
        self.spool = spool
        self.maildir_root = maildir_root
        self.maildir = maildir or MaildirWriter(maildir_root)
        self.pipeline = pipeline
        self.concurrency = concurrency
        self.schedule = schedule or Schedule()
        self.router = router or Router(frozenset(local_domains), {}, None)
        self.remote = remote
        self.hostname = hostname
        self.rng = rng or random.Random()
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._inflight: set[str] = set()
        self._claimed: set[str] = set()  # entries a worker or an admin command is moving
        self._after: dict[str, QueueState | None] = {}  # hold/delete asked during an attempt
        self._timers: list[tuple[float, str]] = []
        self._due: dict[str, float] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._io = ThreadPoolExecutor(max_workers=max(concurrency, 2), thread_name_prefix="deliver")
        self.delivered = 0
        self.failed = 0
        self.deferred = 0
        self.bounces = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self.metrics: Metrics | None = None
        self._results: Counter | None = None
        self._dsns: Counter | None = None

    @classmethod
    def from_config(cls, cfg: Config, spool: Spool, pipeline: Callable[[], Pipeline],
                    dns: DnsLookup | None, metrics: Metrics | None = None) -> QueueRunner:
        """The runner the daemon uses: routes, SMTP/LMTP client and schedule from config."""
        from elemta_core.delivery.pool import ConnectionPool
        from elemta_core.delivery.remote import RemoteDelivery
        from elemta_core.delivery.smtp import ClientSettings

        d, q = cfg.delivery, cfg.queue
        settings = ClientSettings.from_config(cfg)
        pool = ConnectionPool(q.connection_reuse, q.connection_idle_seconds,
                              q.destination_concurrency)
        remote = RemoteDelivery(settings, dns, pool, q.destination_concurrency)
        runner = cls(spool, cfg.maildir_root, tuple(d.local_domains), pipeline,
                     concurrency=d.concurrency, schedule=Schedule.from_config(q),
                     router=Router.from_config(d), remote=remote, hostname=cfg.server.hostname,
                     maildir=MaildirWriter(cfg.maildir_root, cfg.spool.sync, cfg.spool.max_batch))
        runner.metrics = metrics
        return runner

    def _export(self, metrics: Metrics) -> None:
        """Queue depth per state (read at scrape time): only the process that runs the queue
        exports it (workers hand it their mail)."""
        for st in QueueState:
            metrics.queue_depth.labels(st.value).set_function(
                functools.partial(self._depth, st))

    def count_results(self, metrics: Metrics) -> Counter:
        """Recipient results by status, in every process: workers deliver local mail directly."""
        from prometheus_client import Counter

        if self._results is not None:
            return self._results
        self._results = Counter("elemta_delivery_results", "Recipient delivery attempts by "
                                "outcome (delivered, deferred, failed)", ["status"],
                                registry=metrics.registry)
        self._dsns = Counter("elemta_dsn", "Delivery status notifications queued", ["kind"],
                             registry=metrics.registry)
        return self._results

    def _depth(self, state: QueueState) -> int:
        return len(self.spool.ids(state))

    def reconfigure(self, cfg: Config) -> None:
        """SIGHUP: routes, schedule and client settings (TLS, timeouts, HELO name) apply
        from the next attempt on; worker counts and per-destination limits at restart."""
        from elemta_core.delivery.remote import RemoteDelivery
        from elemta_core.delivery.smtp import ClientSettings

        self.router = Router.from_config(cfg.delivery)
        self.schedule = Schedule.from_config(cfg.queue)
        self.hostname = cfg.server.hostname
        if isinstance(self.remote, RemoteDelivery):
            self.remote.settings = ClientSettings.from_config(cfg)

    # -- life cycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Recover: everything in active/ is delivered again, deferred/ waits its turn."""
        loop = asyncio.get_running_loop()
        self.maildir.start()
        if self.metrics is not None:
            self.count_results(self.metrics)
            self._export(self.metrics)
        active = await loop.run_in_executor(self._io, lambda: [
            qid for qid, env in self.spool.scan(QueueState.ACTIVE) if env is not None])
        deferred = await loop.run_in_executor(self._io, lambda: [
            (qid, env.next_attempt) for qid, env in self.spool.scan(QueueState.DEFERRED)
            if env is not None])
        for qid in active:
            self.submit(qid)
        for qid, at in deferred:
            self._schedule(qid, at)
        if active or deferred:
            log.info("recovered %d active and %d deferred messages from the spool",
                     len(active), len(deferred))
        for i in range(self.concurrency):
            self._tasks.append(asyncio.create_task(self._worker(), name=f"delivery-{i}"))
        self._tasks.append(asyncio.create_task(self._timer_loop(), name="queue-timer"))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except asyncio.CancelledError:
                pass
        self._tasks.clear()
        if self.remote is not None:
            await self.remote.close()
        await self.maildir.close()
        self._io.shutdown(wait=True)

    def submit(self, queue_id: str) -> None:
        """Deliver ``queue_id`` (in active/) as soon as a worker is free."""
        if queue_id not in self._inflight:
            self._inflight.add(queue_id)
            self.idle.clear()
            self._queue.put_nowait(queue_id)

    async def _worker(self) -> None:
        while True:
            qid = await self._queue.get()
            try:
                if qid in self._claimed:
                    continue  # an admin command is moving it; it resubmits when needed
                self._claimed.add(qid)
                try:
                    await self.process(qid)
                finally:
                    self._claimed.discard(qid)
                    self._after.pop(qid, None)
            except Exception:
                log.exception("delivery of %s failed unexpectedly; retrying it later", qid)
                await self._retry_later(qid)
            finally:
                self._inflight.discard(qid)
                if not self._inflight:
                    self.idle.set()

    async def _retry_later(self, qid: str) -> None:
        """After an unexpected error (a full spool while queuing a DSN …): wait, then retry."""
        try:
            await asyncio.get_running_loop().run_in_executor(
                self._io, self.spool.move, qid, QueueState.ACTIVE, QueueState.DEFERRED)
        except OSError as e:
            log.error("%s cannot be moved to the deferred queue (%s); it is retried at the "
                      "next start", qid, e)
            return
        self._schedule(qid, time.time() + self.schedule.retry[0])

    # -- the retry timer -----------------------------------------------------------------------

    def _schedule(self, qid: str, at: float) -> None:
        self._due[qid] = at
        heapq.heappush(self._timers, (at, qid))
        self._wake.set()

    def unschedule(self, qid: str) -> None:
        self._due.pop(qid, None)  # its heap entry is skipped when it comes up

    async def _timer_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            now = time.time()
            while self._timers and self._timers[0][0] <= now:
                at, qid = heapq.heappop(self._timers)
                if self._due.get(qid) != at or qid in self._claimed:
                    continue
                del self._due[qid]
                self._claimed.add(qid)
                try:
                    await loop.run_in_executor(self._io, self.spool.move, qid,
                                               QueueState.DEFERRED, QueueState.ACTIVE)
                except FileNotFoundError:
                    continue
                finally:
                    self._claimed.discard(qid)
                self.submit(qid)
            self._wake.clear()
            wait = self._timers[0][0] - time.time() if self._timers else None
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except TimeoutError:
                pass

    # -- hooks ---------------------------------------------------------------------------------

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

    # -- one attempt ---------------------------------------------------------------------------

    async def process(self, queue_id: str) -> None:
        """One delivery attempt of the entry in active/, then record what happened."""
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
        pending = env.pending()
        if received_hops(data) > self.schedule.max_hops:
            results = [AttemptResult(r.address, False, True, 554,
                                     f"5.4.6 mail loop: more than {self.schedule.max_hops} hops")
                       for r in pending]
        else:
            groups: defaultdict[Route, list[Recipient]] = defaultdict(list)
            for r in pending:
                groups[self.router.route(r.address)].append(r)
            parts = await asyncio.gather(*(self._attempt(env, data, route, rcpts)
                                           for route, rcpts in groups.items()))
            results = [res for part in parts for res in part]
        await self._record(env, data, results)

    async def _attempt(self, env: Envelope, data: bytes, route: Route,
                       rcpts: list[Recipient]) -> list[AttemptResult]:
        results: list[AttemptResult] = []
        go: list[str] = []
        for r in rcpts:
            info = DeliveryInfo(env.queue_id, r.address, env.attempts, "attempt",
                                destination=route.key)
            act = await self._hook(HookPoint.DELIVERY_ATTEMPT, env, info)
            if act is Action.REJECT:
                results.append(AttemptResult(r.address, False, True, 550,
                                             "5.7.1 delivery refused by policy", route.key))
            elif act is Action.TEMPFAIL:
                results.append(AttemptResult(r.address, False, False, 451,
                                             "4.7.1 delivery deferred by policy", route.key))
            elif act is Action.DISCARD:
                results.append(AttemptResult(r.address, True, False, 250,
                                             "2.0.0 discarded by policy", route.key))
            else:
                go.append(r.address)
        if not go:
            return results
        if route.kind is Kind.LOCAL:
            return results + await self._local(env, data, go)
        if self.remote is None:
            return results + [AttemptResult(a, False, False, 451,
                                            "4.3.5 no remote transport is configured", route.key)
                              for a in go]
        try:
            return results + await self.remote.deliver(route, env.mail_from, go, data)
        except Exception as e:  # a bug or an unforeseen error must defer, never lose mail
            log.exception("%s delivery to %s failed", env.queue_id, route.key)
            return results + [AttemptResult(a, False, False, 451, f"4.3.0 {type(e).__name__}",
                                            route.key) for a in go]

    async def _local(self, env: Envelope, data: bytes, addrs: list[str]) -> list[AttemptResult]:
        """Maildir copies for local recipients, group-committed with concurrent deliveries."""
        done = await asyncio.gather(
            *(self.maildir.deliver(a, data, queue_id=env.queue_id, mail_from=env.mail_from)
              for a in addrs), return_exceptions=True)
        out: list[AttemptResult] = []
        for a, res in zip(addrs, done):
            if isinstance(res, DeliveryError):
                code = 550 if res.permanent else 451
                out.append(AttemptResult(a, False, res.permanent, code,
                                         f"{'5' if res.permanent else '4'}.2.0 {res}", LOCAL.key))
            elif isinstance(res, BaseException):
                raise res
            else:
                out.append(AttemptResult(a, True, False, 250, "2.0.0 delivered to maildir",
                                         LOCAL.key))
        return out

    # -- recording -----------------------------------------------------------------------------

    async def _record(self, env: Envelope, data: bytes, results: list[AttemptResult]) -> None:
        loop = asyncio.get_running_loop()
        by_addr = {r.address: r for r in env.recipients}
        failed: list[RecipientStatus] = []
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
                self.failed += 1
                failed.append(RecipientStatus(res.recipient, res.code, res.text, res.destination))
            if self._results is not None:
                self._results.labels(res.status).inc()
            log.info("%s to=<%s> relay=%s status=%s code=%s %s", env.queue_id, res.recipient,
                     res.destination or "-", res.status, res.code, res.text)
            await self._hook(HookPoint.DELIVERY_RESULT, env, DeliveryInfo(
                env.queue_id, res.recipient, env.attempts, res.status, res.code, res.text,
                res.destination))
        if failed:
            await self._bounce(env, data, failed, NoticeKind.FAILED)
        after = self._after.get(env.queue_id, QueueState.ACTIVE)
        if after is None:  # deleted during the attempt
            await loop.run_in_executor(self._io, self.spool.remove, env.queue_id,
                                       QueueState.ACTIVE)
            return
        if not env.pending():
            await self._finish(env, data)
            return
        now = time.time()
        age = now - env.received_at
        if age >= self.schedule.max_age:
            await self._expire(env, data, age)
            return
        if (self.schedule.delay_warning is not None and age >= self.schedule.delay_warning
                and env.tags.get(DELAY_NOTIFIED_TAG) != "1"):
            items = [RecipientStatus(r.address, r.last_code, r.last_text) for r in env.pending()]
            if await self._notify(env, data, items, NoticeKind.DELAYED):
                env.tags[DELAY_NOTIFIED_TAG] = "1"
        env.next_attempt = now + self.schedule.next_delay(env.attempts, self.rng)
        env.last_error = "; ".join(f"{r.address}: {r.last_text}" for r in env.pending())
        dst = QueueState.HOLD if after is QueueState.HOLD else QueueState.DEFERRED
        await loop.run_in_executor(self._io, self.spool.rewrite_envelope, env, data,
                                   QueueState.ACTIVE)
        await loop.run_in_executor(self._io, self.spool.move, env.queue_id,
                                   QueueState.ACTIVE, dst)
        self.deferred += 1
        if dst is QueueState.DEFERRED:
            self._schedule(env.queue_id, env.next_attempt)
        await self._hook(HookPoint.DEFERRED, env, DeliveryInfo(
            env.queue_id, status="deferred", attempt=env.attempts, text=env.last_error))

    async def _finish(self, env: Envelope, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        if self.schedule.keep_failed and any(r.state is RecipientState.FAILED
                                             for r in env.recipients):
            await loop.run_in_executor(self._io, self.spool.rewrite_envelope, env, data,
                                       QueueState.ACTIVE)
            await loop.run_in_executor(self._io, self.spool.move, env.queue_id,
                                       QueueState.ACTIVE, QueueState.FAILED)
            return
        await loop.run_in_executor(self._io, self.spool.remove, env.queue_id, QueueState.ACTIVE)

    async def _expire(self, env: Envelope, data: bytes, age: float) -> None:
        log.warning("%s expired after %.0fs in the queue", env.queue_id, age)
        await self._hook(HookPoint.EXPIRED, env, DeliveryInfo(
            env.queue_id, status="expired", attempt=env.attempts, text=env.last_error))
        items = []
        for r in env.pending():
            r.state = RecipientState.FAILED
            reason = (f"delivery time expired: still undelivered after {_span(age)}; "
                      f"last error: {r.last_code or ''} {r.last_text or 'none'}")
            items.append(RecipientStatus(r.address, r.last_code, r.last_text,
                                         status_code="4.4.7", reason=reason))
        self.failed += len(items)
        await self._bounce(env, data, items, NoticeKind.FAILED)
        await self._finish(env, data)

    async def _bounce(self, env: Envelope, data: bytes, items: list[RecipientStatus],
                      kind: NoticeKind) -> None:
        await self._notify(env, data, items, kind)
        text = "; ".join(f"{it.address}: {it.text}" for it in items)
        for it in items:
            await self._hook(HookPoint.BOUNCED, env, DeliveryInfo(
                env.queue_id, it.address, env.attempts, "bounced", it.code, it.text))
        log.info("%s bounced %d recipient(s): %s", env.queue_id, len(items), text)

    async def _notify(self, env: Envelope, data: bytes, items: list[RecipientStatus],
                      kind: NoticeKind) -> bool:
        """Queue a DSN to the sender (durably, before the original's state changes)."""
        if not should_notify(env.mail_from, Message(data)):
            log.info("%s no %s notice: the sender is null or the message is a report "
                     "(loop protection)", env.queue_id, kind.value)
            return False
        dsn = build_dsn(kind=kind, reporting_mta=self.hostname, queue_id=env.queue_id,
                        mail_from=env.mail_from, items=items, original=data,
                        received_at=env.received_at)
        qid = new_queue_id()
        denv = Envelope(qid, "", [Recipient(env.mail_from)], helo=self.hostname,
                        tags={"dsn.original": env.queue_id, "dsn.kind": kind.value})
        await self.spool.store(denv, dsn)
        self.bounces += 1
        if self._dsns is not None:
            self._dsns.labels(kind.value).inc()
        log.info("%s queued %s notice %s to <%s>", env.queue_id, kind.value, qid, env.mail_from)
        self.submit(qid)
        await self._hook(HookPoint.QUEUED, denv, DeliveryInfo(qid, status="queued"))
        return True

    # -- operator commands (the admin socket) ---------------------------------------------------

    def locate(self, queue_id: str) -> QueueState | None:
        for st in QueueState:
            if self.spool.path(queue_id, st).exists():
                return st
        return None

    async def _move(self, queue_id: str, src: QueueState, dst: QueueState) -> None:
        await asyncio.get_running_loop().run_in_executor(self._io, self.spool.move, queue_id,
                                                         src, dst)

    async def flush(self, queue_id: str | None = None) -> list[str]:
        """Retry now: one deferred (or held back by the timer) entry, or every deferred one."""
        ids = [queue_id] if queue_id else self.spool.ids(QueueState.DEFERRED)
        out: list[str] = []
        for qid in ids:
            st = self.locate(qid)
            if st is QueueState.ACTIVE:
                self.submit(qid)
                out.append(qid)
            elif st is QueueState.DEFERRED and qid not in self._claimed:
                self._claimed.add(qid)
                try:
                    self.unschedule(qid)
                    await self._move(qid, QueueState.DEFERRED, QueueState.ACTIVE)
                except FileNotFoundError:
                    continue
                finally:
                    self._claimed.discard(qid)
                self.submit(qid)
                out.append(qid)
            elif queue_id:
                raise LookupError(f"{qid} is not in the active or deferred queue"
                                  + (f" (it is {st.value})" if st else ""))
        return out

    async def hold(self, queue_id: str) -> str:
        """Stop delivering ``queue_id`` until released; an attempt under way finishes first."""
        st = self.locate(queue_id)
        if st is QueueState.HOLD:
            return "already held"
        if queue_id in self._claimed and st is QueueState.ACTIVE:
            self._after[queue_id] = QueueState.HOLD
            return "held after the current attempt"
        if st not in (QueueState.ACTIVE, QueueState.DEFERRED):
            raise LookupError(f"no message {queue_id} in the active or deferred queue")
        self._claimed.add(queue_id)
        try:
            self.unschedule(queue_id)
            await self._move(queue_id, st, QueueState.HOLD)
        finally:
            self._claimed.discard(queue_id)
        return "held"

    async def release(self, queue_id: str) -> str:
        """Held back to active, delivered now. A message kept in ``failed`` is retried for
        its failed recipients (the operator fixed the cause)."""
        st = self.locate(queue_id)
        if st not in (QueueState.HOLD, QueueState.FAILED):
            raise LookupError(f"no message {queue_id} on hold")
        if st is QueueState.FAILED:
            loop = asyncio.get_running_loop()
            env, data = await self.spool.aread(queue_id, st)
            for r in env.recipients:
                if r.state is RecipientState.FAILED:
                    r.state = RecipientState.PENDING
            env.received_at = time.time()  # a fresh lifetime, or it would expire at once
            await loop.run_in_executor(self._io, self.spool.rewrite_envelope, env, data, st)
        await self._move(queue_id, st, QueueState.ACTIVE)
        self.submit(queue_id)
        return "released"

    async def delete(self, queue_id: str) -> str:
        st = self.locate(queue_id)
        if st is None:
            raise LookupError(f"no message {queue_id} in the queue")
        if queue_id in self._claimed and st is QueueState.ACTIVE:
            self._after[queue_id] = None
            return "deleted after the current attempt"
        self.unschedule(queue_id)
        await asyncio.get_running_loop().run_in_executor(self._io, self.spool.remove,
                                                         queue_id, st)
        return "deleted"
