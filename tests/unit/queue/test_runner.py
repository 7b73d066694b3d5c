"""The scheduler over a real spool: retries, partial failure, DSNs, expiry, hooks, hold.

Remote servers are scripted here (the SMTP client has its own tests against real ones);
local recipients are delivered into a real Maildir.
"""

from __future__ import annotations

import asyncio
import email
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from elemta_core.delivery.result import AttemptResult
from elemta_core.delivery.transports import Route, Router
from elemta_core.hooks.context import HookContext
from elemta_core.hooks.pipeline import Pipeline, make_link
from elemta_core.hooks.types import CONTINUE, Action, FailurePolicy, HookPoint, HookResult
from elemta_core.queue.envelope import Envelope, QueueState, Recipient, RecipientState, new_queue_id
from elemta_core.queue.runner import QueueRunner, Schedule
from elemta_core.queue.spool import Spool

MSG = b"From: alice@localhost\r\nSubject: hello\r\n\r\nbody\r\n"


@dataclass
class Scripted:
    """Replies per recipient, consumed in order; the last one repeats."""

    script: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    calls: list[tuple[str, list[str]]] = field(default_factory=list)

    async def deliver(self, route: Route, mail_from: str, recipients: list[str],
                      data: bytes) -> list[AttemptResult]:
        self.calls.append((route.key, list(recipients)))
        out = []
        for a in recipients:
            steps = self.script.get(a, [(250, "2.0.0 ok")])
            code, text = steps.pop(0) if len(steps) > 1 else steps[0]
            out.append(AttemptResult(a, 200 <= code < 300, code >= 500, code, text, route.key))
        return out

    async def close(self) -> None:
        pass


@dataclass
class Hooks:
    seen: list[tuple[HookPoint, str | None, str]] = field(default_factory=list)
    attempt_action: Callable[[str], Action] = lambda a: Action.CONTINUE

    def pipeline(self) -> Pipeline:
        links = []
        for hp in (HookPoint.QUEUED, HookPoint.DEFERRED, HookPoint.BOUNCED, HookPoint.EXPIRED,
                   HookPoint.DELIVERY_ATTEMPT, HookPoint.DELIVERY_RESULT):
            links.append(make_link("recorder", hp, self._fn(hp), 10, 1.0, FailurePolicy.TEMPFAIL))
        return Pipeline(links)

    def _fn(self, hp: HookPoint) -> Callable[[HookContext], HookResult]:
        def fn(ctx: HookContext) -> HookResult:
            assert ctx.delivery is not None
            self.seen.append((hp, ctx.delivery.recipient, ctx.delivery.status))
            if hp is HookPoint.DELIVERY_ATTEMPT and ctx.recipient:
                act = self.attempt_action(ctx.recipient)
                if act is not Action.CONTINUE:
                    return HookResult(act)
            return CONTINUE
        return fn

    def of(self, hp: HookPoint) -> list[tuple[str | None, str]]:
        return [(r, s) for h, r, s in self.seen if h is hp]


@dataclass
class Env:
    spool: Spool
    runner: QueueRunner
    remote: Scripted
    hooks: Hooks
    root: Path

    async def queue(self, mail_from: str, rcpts: list[str], data: bytes = MSG,
                    received_at: float | None = None) -> str:
        env = Envelope(new_queue_id(), mail_from, [Recipient(a) for a in rcpts])
        if received_at is not None:
            env.received_at = received_at
        await self.spool.store(env, data)
        self.runner.submit(env.queue_id)
        return env.queue_id

    async def settle(self) -> None:
        for _ in range(200):
            await asyncio.sleep(0.01)
            if self.runner.idle.is_set():
                await asyncio.sleep(0.01)
                if self.runner.idle.is_set():
                    return
        raise AssertionError("runner did not settle")

    def maildir(self, address: str) -> list[bytes]:
        local, _, domain = address.partition("@")
        new = self.root / "mail" / domain / local / "new"
        return [p.read_bytes() for p in sorted(new.iterdir())] if new.exists() else []

    def state(self, qid: str) -> QueueState | None:
        return self.runner.locate(qid)


@pytest.fixture
async def q(tmp_path: Path) -> AsyncIterator[Env]:
    spool = Spool(tmp_path / "spool")
    await spool.start()
    remote, hooks = Scripted(), Hooks()
    pipe = hooks.pipeline()
    runner = QueueRunner(spool, tmp_path / "mail", ("localhost",), lambda: pipe,
                         concurrency=4, schedule=Schedule(retry=(60.0,), jitter=0.0),
                         router=Router(frozenset({"localhost"}), {}, None), remote=remote,
                         hostname="mx.test")
    await runner.start()
    yield Env(spool, runner, remote, hooks, tmp_path)
    await runner.stop()
    await spool.close()


async def test_local_and_remote_recipients_are_delivered(q: Env) -> None:
    qid = await q.queue("alice@localhost", ["bob@localhost", "carol@remote.test"])
    await q.settle()
    assert len(q.maildir("bob@localhost")) == 1
    assert q.remote.calls == [("smtp:remote.test:25", ["carol@remote.test"])]
    assert q.state(qid) is None
    assert sorted(q.hooks.of(HookPoint.DELIVERY_RESULT)) == [
        ("bob@localhost", "delivered"), ("carol@remote.test", "delivered")]
    assert {r for r, _ in q.hooks.of(HookPoint.DELIVERY_ATTEMPT)} == {
        "bob@localhost", "carol@remote.test"}


async def test_tempfail_defers_then_flush_delivers(q: Env) -> None:
    q.remote.script["carol@remote.test"] = [(451, "4.3.0 try later"), (250, "2.0.0 ok")]
    qid = await q.queue("alice@localhost", ["carol@remote.test"])
    await q.settle()
    assert q.state(qid) is QueueState.DEFERRED
    env, _ = q.spool.read(qid, QueueState.DEFERRED)
    assert env.attempts == 1 and env.recipients[0].last_code == 451
    assert 55 < env.next_attempt - time.time() <= 60
    assert q.hooks.of(HookPoint.DEFERRED) == [(None, "deferred")]
    assert await q.runner.flush() == [qid]
    await q.settle()
    assert q.state(qid) is None
    assert q.remote.calls == [("smtp:remote.test:25", ["carol@remote.test"])] * 2


async def test_retry_timer_fires(q: Env) -> None:
    q.runner.schedule = Schedule(retry=(0.2,), jitter=0.0)
    q.remote.script["carol@remote.test"] = [(451, "4.3.0 later"), (250, "2.0.0 ok")]
    qid = await q.queue("alice@localhost", ["carol@remote.test"])
    await q.settle()
    assert q.state(qid) is QueueState.DEFERRED
    await asyncio.sleep(0.5)
    await q.settle()
    assert q.state(qid) is None and len(q.remote.calls) == 2


async def test_partial_failure_retries_only_what_is_left_and_bounces_the_failed(q: Env) -> None:
    q.remote.script.update({"gone@remote.test": [(550, "5.1.1 no such user")],
                            "busy@remote.test": [(451, "4.2.1 busy"), (250, "2.0.0 ok")]})
    qid = await q.queue("alice@localhost",
                        ["ok@remote.test", "gone@remote.test", "busy@remote.test"])
    await q.settle()
    env, _ = q.spool.read(qid, QueueState.DEFERRED)
    assert {r.address: r.state for r in env.recipients} == {
        "ok@remote.test": RecipientState.DELIVERED, "gone@remote.test": RecipientState.FAILED,
        "busy@remote.test": RecipientState.PENDING}
    (dsn,) = q.maildir("alice@localhost")
    assert dsn.startswith(b"Return-Path: <>\r\n")
    parsed = email.message_from_bytes(dsn)
    assert parsed.get_content_type() == "multipart/report"
    assert b"Final-Recipient: rfc822; gone@remote.test" in dsn and b"busy@remote.test" not in dsn
    assert q.hooks.of(HookPoint.BOUNCED) == [("gone@remote.test", "bounced")]
    assert ("gone@remote.test", "failed") in q.hooks.of(HookPoint.DELIVERY_RESULT)
    assert (None, "queued") in q.hooks.of(HookPoint.QUEUED)  # the DSN itself
    await q.runner.flush(qid)
    await q.settle()
    assert q.remote.calls[-1] == ("smtp:remote.test:25", ["busy@remote.test"])
    assert q.state(qid) is None
    assert len(q.maildir("alice@localhost")) == 1  # no second DSN


async def test_no_dsn_to_the_null_sender(q: Env) -> None:
    q.remote.script["gone@remote.test"] = [(550, "5.1.1 no such user")]
    qid = await q.queue("", ["gone@remote.test"])
    await q.settle()
    assert q.state(qid) is None
    assert q.runner.bounces == 0
    assert q.hooks.of(HookPoint.BOUNCED) == [("gone@remote.test", "bounced")]


async def test_a_dsn_that_cannot_be_delivered_is_dropped_not_bounced(q: Env) -> None:
    q.remote.script.update({"gone@remote.test": [(550, "5.1.1 no such user")],
                            "sender@remote.test": [(550, "5.1.1 sender gone too")]})
    await q.queue("sender@remote.test", ["gone@remote.test"])
    await q.settle()
    assert q.runner.bounces == 1  # one DSN, which fails and is not bounced again
    assert q.remote.calls[-1] == ("smtp:remote.test:25", ["sender@remote.test"])
    assert q.spool.ids(QueueState.ACTIVE) == q.spool.ids(QueueState.DEFERRED) == []


async def test_expiry_bounces_with_4_4_7(q: Env) -> None:
    q.remote.script["slow@remote.test"] = [(451, "4.4.1 connection refused")]
    q.runner.schedule = Schedule(retry=(60.0,), max_age=3600)
    qid = await q.queue("alice@localhost", ["slow@remote.test"], received_at=time.time() - 7200)
    await q.settle()
    assert q.state(qid) is None
    assert q.hooks.of(HookPoint.EXPIRED) == [(None, "expired")]
    (dsn,) = q.maildir("alice@localhost")
    assert b"Status: 4.4.7" in dsn and b"Action: failed" in dsn
    assert b"4.4.1 connection refused" in dsn


async def test_keep_failed_keeps_the_entry(q: Env) -> None:
    q.runner.schedule = Schedule(keep_failed=True)
    q.remote.script["gone@remote.test"] = [(550, "5.1.1 no")]
    qid = await q.queue("alice@localhost", ["gone@remote.test"])
    await q.settle()
    assert q.state(qid) is QueueState.FAILED


async def test_delay_notice_is_sent_once(q: Env) -> None:
    q.runner.schedule = Schedule(retry=(60.0,), delay_warning=60.0)
    q.remote.script["slow@remote.test"] = [(451, "4.4.1 refused")]
    qid = await q.queue("alice@localhost", ["slow@remote.test"], received_at=time.time() - 120)
    await q.settle()
    await q.runner.flush(qid)
    await q.settle()
    (notice,) = q.maildir("alice@localhost")
    assert b"Action: delayed" in notice and b"Status: 4.4.1" in notice
    assert q.state(qid) is QueueState.DEFERRED


async def test_delivery_attempt_hook_can_refuse_or_defer(q: Env) -> None:
    q.hooks.attempt_action = lambda a: {"no@remote.test": Action.REJECT,
                                        "later@remote.test": Action.TEMPFAIL}.get(a, Action.CONTINUE)
    qid = await q.queue("", ["no@remote.test", "later@remote.test", "yes@remote.test"])
    await q.settle()
    env, _ = q.spool.read(qid, QueueState.DEFERRED)
    assert {r.address: r.state for r in env.recipients} == {
        "no@remote.test": RecipientState.FAILED, "later@remote.test": RecipientState.PENDING,
        "yes@remote.test": RecipientState.DELIVERED}
    assert q.remote.calls == [("smtp:remote.test:25", ["yes@remote.test"])]


async def test_mail_loop_is_bounced(q: Env) -> None:
    looped = b"".join(b"Received: from x by y; now\r\n" for _ in range(60)) + MSG
    qid = await q.queue("alice@localhost", ["carol@remote.test"], data=looped)
    await q.settle()
    assert q.remote.calls == [] and q.state(qid) is None
    (dsn,) = q.maildir("alice@localhost")
    assert b"Status: 5.4.6" in dsn


async def test_hold_release_delete(q: Env) -> None:
    q.remote.script["carol@remote.test"] = [(451, "4.3.0 later"), (250, "2.0.0 ok")]
    qid = await q.queue("alice@localhost", ["carol@remote.test"])
    await q.settle()
    assert await q.runner.hold(qid) == "held"
    assert q.state(qid) is QueueState.HOLD
    assert qid not in q.runner._due
    assert await q.runner.flush() == []  # held messages are not flushed
    with pytest.raises(LookupError):
        await q.runner.flush(qid)
    assert await q.runner.release(qid) == "released"
    await q.settle()
    assert q.state(qid) is None and len(q.remote.calls) == 2
    q.remote.script["dave@remote.test"] = [(451, "4.3.0 later")]
    qid2 = await q.queue("alice@localhost", ["dave@remote.test"])
    await q.settle()
    assert await q.runner.delete(qid2) == "deleted"
    assert q.state(qid2) is None
    with pytest.raises(LookupError):
        await q.runner.delete(qid2)


async def test_hold_during_an_attempt_takes_effect_after_it(q: Env) -> None:
    gate = asyncio.Event()
    original = q.remote.deliver

    async def slow(route, mail_from, recipients, data):  # type: ignore[no-untyped-def]
        await gate.wait()
        return [AttemptResult(a, False, False, 451, "4.3.0 later") for a in recipients]

    q.remote.deliver = slow  # type: ignore[method-assign]
    qid = await q.queue("alice@localhost", ["carol@remote.test"])
    await asyncio.sleep(0.05)
    assert await q.runner.hold(qid) == "held after the current attempt"
    gate.set()
    await q.settle()
    assert q.state(qid) is QueueState.HOLD
    q.remote.deliver = original  # type: ignore[method-assign]


async def test_crash_recovery_redelivers_only_pending(tmp_path: Path) -> None:
    """An entry left in active/ with one recipient done (as after SIGKILL) resumes."""
    spool = Spool(tmp_path / "spool")
    await spool.start()
    env = Envelope(new_queue_id(), "alice@localhost",
                   [Recipient("done@remote.test", RecipientState.DELIVERED),
                    Recipient("todo@remote.test")])
    await spool.store(env, MSG)
    later = Envelope(new_queue_id(), "alice@localhost", [Recipient("later@remote.test")],
                     next_attempt=time.time() + 0.2)
    await spool.store(later, MSG, QueueState.DEFERRED)
    remote = Scripted()
    runner = QueueRunner(spool, tmp_path / "mail", ("localhost",), lambda: Pipeline([]),
                         remote=remote)
    await runner.start()
    for _ in range(100):
        await asyncio.sleep(0.02)
        if len(remote.calls) == 2 and runner.idle.is_set():
            break
    await runner.stop()
    await spool.close()
    assert sorted(remote.calls) == [("smtp:remote.test:25", ["later@remote.test"]),
                                    ("smtp:remote.test:25", ["todo@remote.test"])]
    assert spool.ids(QueueState.ACTIVE) == spool.ids(QueueState.DEFERRED) == []


async def test_release_of_a_kept_failed_message_retries_its_failed_recipients(q: Env) -> None:
    q.runner.schedule = Schedule(keep_failed=True)
    q.remote.script["gone@remote.test"] = [(550, "5.1.1 no"), (250, "2.0.0 ok now")]
    qid = await q.queue("alice@localhost", ["gone@remote.test", "ok@remote.test"])
    await q.settle()
    assert q.state(qid) is QueueState.FAILED
    assert await q.runner.release(qid) == "released"
    await q.settle()
    assert q.state(qid) is None
    assert q.remote.calls[-1] == ("smtp:remote.test:25", ["gone@remote.test"])


async def test_an_unexpected_error_defers_instead_of_stranding_the_message(q: Env) -> None:
    calls = 0
    original = q.runner._record

    async def broken(env, data, results):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("disk trouble")
        await original(env, data, results)

    q.runner._record = broken  # type: ignore[method-assign]
    qid = await q.queue("alice@localhost", ["carol@remote.test"])
    await q.settle()
    assert q.state(qid) is QueueState.DEFERRED and qid in q.runner._due
    await q.runner.flush(qid)
    await q.settle()
    assert q.state(qid) is None


async def test_metrics_queue_depth_and_results(tmp_path: Path) -> None:
    from elemta_core.metrics import Metrics

    spool = Spool(tmp_path / "spool")
    await spool.start()
    remote = Scripted({"later@remote.test": [(451, "4.3.0 later")]})
    runner = QueueRunner(spool, tmp_path / "mail", ("localhost",), lambda: Pipeline([]),
                         remote=remote)
    metrics = Metrics()
    runner.metrics = metrics
    await runner.start()
    for rcpt in ("now@remote.test", "later@remote.test", "bob@localhost"):
        env = Envelope(new_queue_id(), "", [Recipient(rcpt)])
        await spool.store(env, MSG)
        runner.submit(env.queue_id)
    for _ in range(100):
        await asyncio.sleep(0.02)
        if runner.idle.is_set() and runner.deferred:
            break
    reg = metrics.registry
    assert reg.get_sample_value("elemta_queue_depth", {"state": "deferred"}) == 1
    assert reg.get_sample_value("elemta_queue_depth", {"state": "active"}) == 0
    assert reg.get_sample_value("elemta_delivery_results_total", {"status": "delivered"}) == 2
    assert reg.get_sample_value("elemta_delivery_results_total", {"status": "deferred"}) == 1
    await runner.stop()
    await spool.close()
