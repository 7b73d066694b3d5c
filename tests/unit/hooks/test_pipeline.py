from __future__ import annotations

import asyncio
from typing import Any

import pytest

from elemta_core.hooks.context import HookContext, SecurityEvent
from elemta_core.hooks.pipeline import Pipeline, PluginUnavailable, make_link
from elemta_core.hooks.types import (
    CONTINUE, Action, FailurePolicy, HeaderChange, HeaderOp, HookPoint, HookResult,
)

RCPT = HookPoint.RCPT_TO


def ctx() -> HookContext:
    return HookContext(session_id="s", peer_ip="192.0.2.1")


def link(name: str, fn: Any, priority: int = 100, timeout: float | None = 1.0,
         policy: FailurePolicy = FailurePolicy.TEMPFAIL, hook: HookPoint = RCPT) -> Any:
    return make_link(name, hook, fn, priority, timeout, policy)


async def test_priority_order_first_decision_wins() -> None:
    seen: list[str] = []

    def mk(name: str, result: HookResult) -> Any:
        def fn(c: HookContext) -> HookResult:
            seen.append(name)
            return result
        return fn

    p = Pipeline([link("c", mk("c", HookResult.reject()), 30), link("a", mk("a", CONTINUE), 10),
                  link("b", mk("b", HookResult.tempfail()), 20)])
    r = await p.run(RCPT, ctx())
    assert r.action is Action.TEMPFAIL
    assert seen == ["a", "b"]


async def test_same_priority_is_ordered_by_name() -> None:
    seen: list[str] = []
    p = Pipeline([link(n, lambda c, n=n: seen.append(n) or CONTINUE, 5) for n in "zya"])
    await p.run(RCPT, ctx())
    assert seen == ["a", "y", "z"]


async def test_tags_and_headers_accumulate_even_on_continue() -> None:
    async def tagger(c: HookContext) -> HookResult:
        return HookResult(tags={"spf.result": "pass"},
                          headers=(HeaderChange(HeaderOp.ADD, "X-A", "1"),))

    def reader(c: HookContext) -> HookResult:
        assert c.tags["spf.result"] == "pass"
        return HookResult.reject("no", tags={"seen": "yes"})

    c = ctx()
    r = await Pipeline([link("t", tagger, 1), link("r", reader, 2)]).run(RCPT, c)
    assert r.action is Action.REJECT
    assert c.tags == {"spf.result": "pass", "seen": "yes"}
    assert c.header_changes == [HeaderChange(HeaderOp.ADD, "X-A", "1")]


@pytest.mark.parametrize("policy,action", [
    (FailurePolicy.TEMPFAIL, Action.TEMPFAIL), (FailurePolicy.REJECT, Action.REJECT),
    (FailurePolicy.CONTINUE, Action.CONTINUE)])
@pytest.mark.parametrize("fault", ["raise", "timeout", "unavailable", "garbage", "sync_raise"])
async def test_failures_become_the_policy_and_are_reported(policy: FailurePolicy, action: Action,
                                                            fault: str) -> None:
    async def bad(c: HookContext) -> Any:
        if fault == "raise":
            raise ValueError("boom")
        if fault == "timeout":
            await asyncio.sleep(5)
        if fault == "unavailable":
            raise PluginUnavailable("restarting")
        return 42

    def sync_bad(c: HookContext) -> Any:
        raise KeyError("x")

    events: list[SecurityEvent] = []
    p = Pipeline([link("bad", sync_bad if fault == "sync_raise" else bad, timeout=0.05,
                       policy=policy)],
                 on_failure=lambda hp, c, ev: events.append(ev))
    r = await p.run(RCPT, ctx())
    assert r.action is action
    assert len(events) == 1 and events[0].plugin == "bad" and events[0].kind == "plugin_failed"
    st = p.chains[RCPT][0].stats
    assert st.count == 1 and st.failures + st.timeouts == 1


async def test_observer_hooks_run_everything_and_ignore_actions() -> None:
    seen: list[str] = []
    p = Pipeline([
        link("a", lambda c: seen.append("a") or HookResult.reject(), 1, hook=HookPoint.DISCONNECT),
        link("b", lambda c: seen.append("b") or CONTINUE, 2, hook=HookPoint.DISCONNECT),
    ])
    assert (await p.run(HookPoint.DISCONNECT, ctx())).action is Action.CONTINUE
    assert seen == ["a", "b"]


async def test_plugin_failed_hook_does_not_recurse() -> None:
    events: list[SecurityEvent] = []

    def boom(c: HookContext) -> HookResult:
        raise RuntimeError

    p = Pipeline([link("x", boom, hook=HookPoint.PLUGIN_FAILED)],
                 on_failure=lambda hp, c, ev: events.append(ev))
    await p.run(HookPoint.PLUGIN_FAILED, ctx())
    assert events == []


async def test_cancellation_propagates() -> None:
    async def slow(c: HookContext) -> HookResult:
        await asyncio.sleep(5)
        return CONTINUE

    p = Pipeline([link("s", slow, timeout=None)])
    t = asyncio.create_task(p.run(RCPT, ctx()))
    await asyncio.sleep(0.01)
    t.cancel()
    with pytest.raises(asyncio.CancelledError):
        await t


async def test_empty_chain_is_continue() -> None:
    assert await Pipeline([]).run(RCPT, ctx()) is CONTINUE


async def test_suspending_hooks_resume_correctly_with_and_without_timeout() -> None:
    loop = asyncio.get_running_loop()

    async def waits(c: HookContext) -> HookResult:
        await asyncio.sleep(0)  # a bare yield
        fut = loop.create_future()
        loop.call_later(0.01, fut.set_result, "x")
        assert await fut == "x"
        assert asyncio.current_task() is not None
        return HookResult.reject("after waiting")

    for timeout in (None, 1.0):
        r = await Pipeline([link("w", waits, timeout=timeout)]).run(RCPT, ctx())
        assert r.text == "after waiting"


async def test_exception_after_suspension_applies_policy() -> None:
    async def late_fail(c: HookContext) -> HookResult:
        await asyncio.sleep(0.001)
        raise ValueError("late")

    r = await Pipeline([link("l", late_fail, policy=FailurePolicy.REJECT)]).run(RCPT, ctx())
    assert r.action is Action.REJECT
