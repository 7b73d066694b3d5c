"""The antispam plugin against a scripted Rspamd (aiohttp server): every action, thresholds,
milter headers, size limit and failure policy."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from builtin_plugins.scanning.config import AntispamConfig
from builtin_plugins.scanning.rspamd import RspamdPlugin
from elemta_core.hooks.context import HookContext, SecurityEvent
from elemta_core.hooks.pipeline import PluginUnavailable
from elemta_core.hooks.types import Action, FailurePolicy, HookPoint, HookResult
from elemta_core.message.message import Message
from elemta_core.plugins.api import PluginServices
from tests.support.ports import free_port

RAW = (b"Subject: hello\r\nX-Spam: yes-forged\r\nX-Spam-Status: No, forged\r\n"
       b"From: a@example.org\r\n\r\nbody\r\n")


@dataclass
class FakeRspamd:
    answer: dict[str, Any] = field(default_factory=lambda: {
        "score": 1.5, "required_score": 15.0, "action": "no action",
        "symbols": {"B": {"score": 1.0}, "A": {"score": 0.5}}})
    status: int = 200
    delay: float = 0.0
    requests: list[tuple[dict[str, list[str]], bytes]] = field(default_factory=list)

    async def check(self, request: web.Request) -> web.Response:
        headers: dict[str, list[str]] = {}
        for k, v in request.headers.items():
            headers.setdefault(k, []).append(v)
        self.requests.append((headers, await request.read()))
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(status=self.status, body=json.dumps(self.answer).encode(),
                            content_type="application/json")


@pytest.fixture
async def rspamd() -> AsyncIterator[tuple[FakeRspamd, str]]:
    fake = FakeRspamd()
    app = web.Application()
    app.router.add_post("/checkv2", fake.check)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    yield fake, f"http://127.0.0.1:{port}"
    await runner.cleanup()


@dataclass
class Harness:
    plugin: RspamdPlugin
    events: list[SecurityEvent]


@pytest.fixture
async def make(tmp_path: Path, rspamd: tuple[FakeRspamd, str]) -> AsyncIterator[Any]:
    made: list[RspamdPlugin] = []

    async def build(**cfg: Any) -> Harness:
        events: list[SecurityEvent] = []
        services = PluginServices(hostname="mx.test", state_dir=tmp_path,
                                  emit=lambda hook, ctx, ev: events.append(ev))
        cfg.setdefault("rspamd_url", rspamd[1])
        plugin = RspamdPlugin(AntispamConfig(**cfg), services)
        await plugin.start()
        made.append(plugin)
        return Harness(plugin, events)

    yield build
    for p in made:
        await p.stop()


def context(raw: bytes = RAW) -> HookContext:
    return HookContext(session_id="s1", peer_ip="192.0.2.1", helo="client.test",
                       transaction_id="QID1", mail_from="a@example.org",
                       recipients=["b@example.net", "c@example.net"], auth_user="alice",
                       message=Message(raw))


def applied(result: HookResult, raw: bytes = RAW) -> Message:
    return Message(raw).with_changes(result.headers)


async def test_request_carries_envelope_and_exact_message(make: Any, rspamd: Any) -> None:
    fake, _ = rspamd
    h = await make()
    await h.plugin.on_message(context())
    headers, body = fake.requests[0]
    assert body == RAW
    assert headers["IP"] == ["192.0.2.1"] and headers["Helo"] == ["client.test"]
    assert headers["From"] == ["a@example.org"]
    assert headers["Rcpt"] == ["b@example.net", "c@example.net"]
    assert headers["Queue-Id"] == ["QID1"] and headers["User"] == ["alice"]


async def test_no_action_adds_score_headers_and_tags(make: Any) -> None:
    h = await make()
    r = await h.plugin.on_message(context())
    assert r.action is Action.CONTINUE
    assert dict(r.tags) == {"spam.status": "scanned", "spam.score": "1.50",
                            "spam.required": "15.00", "spam.action": "no action",
                            "spam.symbols": "A,B"}
    msg = applied(r)
    assert msg.get_all("X-Spam-Score") == ["1.50"]
    assert msg.get_all("X-Spam-Status") == ["No, score=1.50 required=15.00 action=no_action"]
    assert msg.get_all("X-Spam") == ["yes-forged"]  # left alone unless Rspamd says otherwise


async def test_reject_uses_rspamds_smtp_message(make: Any, rspamd: Any) -> None:
    fake, _ = rspamd
    fake.answer = {"score": 15, "required_score": 15, "action": "reject", "is_skipped": True,
                   "messages": {"smtp_message": "Gtube pattern"}}
    r = await (await make()).plugin.on_message(context())
    assert (r.action, r.code, r.enhanced, r.text) == (Action.REJECT, 550, "5.7.1", "Gtube pattern")
    assert "spam score 15.00" in (r.reason or "")
    r = await (await make(use_smtp_message=False, reject_message="No spam")).plugin.on_message(
        context())
    assert r.text == "No spam"


@pytest.mark.parametrize(("reject_action", "expected"), [
    ("quarantine", Action.QUARANTINE), ("discard", Action.DISCARD)])
async def test_reject_action_can_quarantine_or_discard(make: Any, rspamd: Any,
                                                       reject_action: str,
                                                       expected: Action) -> None:
    rspamd[0].answer = {"score": 20, "required_score": 15, "action": "reject"}
    r = await (await make(reject_action=reject_action)).plugin.on_message(context())
    assert r.action is expected and r.reason
    if expected is Action.QUARANTINE:
        assert r.tags["quarantine.plugin"] == "antispam"
    assert applied(r).get("X-Spam-Status", "").startswith("Yes, score=20.00")


@pytest.mark.parametrize("action", ["soft reject", "greylist"])
async def test_soft_reject_and_greylist_tempfail(make: Any, rspamd: Any, action: str) -> None:
    rspamd[0].answer = {"score": 5, "required_score": 15, "action": action}
    r = await (await make()).plugin.on_message(context())
    assert (r.action, r.code, r.enhanced) == (Action.TEMPFAIL, 451, "4.7.1")


async def test_add_header_sets_the_spam_header(make: Any, rspamd: Any) -> None:
    rspamd[0].answer = {"score": 7, "required_score": 15, "action": "add header"}
    r = await (await make()).plugin.on_message(context())
    assert r.action is Action.CONTINUE
    msg = applied(r)
    assert msg.get_all("X-Spam") == ["Yes"]
    assert msg.get("X-Spam-Status", "").startswith("Yes, score=7.00")


async def test_rewrite_subject(make: Any, rspamd: Any) -> None:
    rspamd[0].answer = {"score": 9, "required_score": 15, "action": "rewrite subject",
                        "subject": "[SPAM] hello"}
    r = await (await make()).plugin.on_message(context())
    assert applied(r).get_all("Subject") == ["[SPAM] hello"]
    del rspamd[0].answer["subject"]
    r = await (await make(subject_prefix="*** ")).plugin.on_message(context())
    assert applied(r).get_all("Subject") == ["*** hello"]


async def test_milter_header_changes_are_applied(make: Any, rspamd: Any) -> None:
    raw = b"X-Old: 1\r\nX-Old: 2\r\nX-Old: 3\r\nX-Spam: forged\r\nSubject: s\r\n\r\nb\r\n"
    rspamd[0].answer = {"score": 0, "required_score": 15, "action": "no action", "milter": {
        "remove_headers": {"X-Spam": 0, "X-Old": -1},
        "add_headers": {"X-Spamd-Result": {"value": "default: False [0.00 / 15.00]", "order": 0},
                        "X-Rspamd-Queue-Id": "QID1"}}}
    r = await (await make()).plugin.on_message(context(raw))
    msg = applied(r, raw)
    assert msg.get_all("X-Old") == ["1", "2"]
    assert msg.get_all("X-Spam") == []
    assert msg.get("X-Spamd-Result") == "default: False [0.00 / 15.00]"
    assert msg.get("X-Rspamd-Queue-Id") == "QID1"
    r = await (await make(milter_headers=False, score_headers=False)).plugin.on_message(
        context(raw))
    assert r.headers == ()


@pytest.mark.parametrize(("score", "skipped", "rspamd_action", "expected"), [
    (8.0, False, "no action", Action.REJECT),        # reject_score 7 reached
    (6.0, False, "reject", Action.CONTINUE),         # add header at 5: Rspamd's reject overridden
    (1.0, False, "add header", Action.CONTINUE),     # nothing reached
    (0.0, True, "reject", Action.REJECT),            # a forced (skipped) action always stands
])
async def test_thresholds_override_rspamd(make: Any, rspamd: Any, score: float, skipped: bool,
                                          rspamd_action: str, expected: Action) -> None:
    rspamd[0].answer = {"score": score, "required_score": 15, "action": rspamd_action,
                        "is_skipped": skipped}
    h = await make(reject_score=7.0, add_header_score=5.0)
    r = await h.plugin.on_message(context())
    assert r.action is expected
    if score == 6.0:
        assert r.tags["spam.action"] == "add header"
        assert applied(r).get("X-Spam") == "Yes"
    if score == 1.0:
        assert r.tags["spam.action"] == "no action"


async def test_over_max_size_is_not_scanned(make: Any, rspamd: Any) -> None:
    r = await (await make(max_size=10)).plugin.on_message(context())
    assert r.action is Action.CONTINUE and r.tags == {"spam.status": "unscanned"}
    assert rspamd[0].requests == []


async def test_failure_without_section_policy_is_the_pipelines(make: Any, rspamd: Any) -> None:
    rspamd[0].status = 500
    with pytest.raises(PluginUnavailable, match="HTTP 500"):
        await (await make()).plugin.on_message(context())


@pytest.mark.parametrize(("policy", "expected"), [
    (FailurePolicy.CONTINUE, Action.CONTINUE), (FailurePolicy.TEMPFAIL, Action.TEMPFAIL),
    (FailurePolicy.REJECT, Action.REJECT)])
async def test_section_failure_policy(make: Any, rspamd: Any, policy: FailurePolicy,
                                      expected: Action) -> None:
    rspamd[0].answer = {"error": "cannot parse"}
    h = await make(failure_policy=policy)
    r = await h.plugin.on_message(context())
    assert r.action is expected
    assert r.tags["spam.status"] == "unscanned"
    assert [(e.kind, e.plugin, e.data["policy"]) for e in h.events] == [
        ("plugin_failed", "antispam", policy.value)]


async def test_timeout(make: Any, rspamd: Any) -> None:
    rspamd[0].delay = 2.0
    h = await make(timeout=0.2, failure_policy=FailurePolicy.TEMPFAIL)
    r = await h.plugin.on_message(context())
    assert r.action is Action.TEMPFAIL and "0.2s" in (r.reason or "")


async def test_nobody_listening(make: Any) -> None:
    h = await make(rspamd_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(PluginUnavailable, match="cannot connect"):
        await h.plugin.on_message(context())


async def test_no_message_no_scan(make: Any, rspamd: Any) -> None:
    ctx = context()
    ctx.message = None
    assert (await (await make()).plugin.on_message(ctx)).action is Action.CONTINUE
    assert rspamd[0].requests == []
    assert HookPoint.MESSAGE in (await make()).plugin.hooks()
