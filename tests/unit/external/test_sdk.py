"""The Python SDK's dispatch, without a process: handlers, results, errors."""

from __future__ import annotations

import asyncio
import json

import pytest
from elemta_plugin import Plugin, Result
from elemta_plugin._proto.elemta.plugin.v1 import plugin_pb2 as pb


def request(hook: int, **ctx: object) -> pb.HookRequest:
    return pb.HookRequest(id=7, hook=hook, context=pb.Context(**ctx))  # type: ignore[arg-type]


def test_describe_lists_hooks_with_priorities() -> None:
    p = Plugin("t", version="2.0", priority=30, failure_policy="continue")
    p.hook("rcpt_to", priority=5)(lambda ctx: None)
    p.hook("connect")(lambda ctx: None)
    d = p.describe()
    assert (d.name, d.version, d.priority, d.protocol_version, d.streaming) == (
        "t", "2.0", 30, 1, True)
    assert d.failure_policy == pb.FAILURE_POLICY_CONTINUE
    assert [(h.hook, h.priority) for h in d.hooks] == [(pb.HOOK_CONNECT, 0), (pb.HOOK_RCPT_TO, 5)]


def test_unknown_or_duplicate_hooks_are_refused() -> None:
    p = Plugin("t")
    with pytest.raises(ValueError, match="unknown hook 'rcpt'"):
        p.hook("rcpt")
    p.hook("helo")(lambda ctx: None)
    with pytest.raises(ValueError, match="already has a handler"):
        p.hook("helo")(lambda ctx: None)


async def test_sync_async_and_blocking_handlers() -> None:
    p = Plugin("t")

    @p.hook("rcpt_to")
    def rcpt(ctx):  # type: ignore[no-untyped-def]
        return Result.reject("no", reason=ctx.recipient).add_header("X-A", "1").tag(k="v")

    @p.hook("mail_from")
    async def mail(ctx):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0)
        return Result.tempfail() if ctx.mail_from == "" else None

    @p.hook("helo", blocking=True)
    def helo(ctx):  # type: ignore[no-untyped-def]
        return Result.accept(ctx.helo)

    r = p.handle_now(request(pb.HOOK_RCPT_TO, recipient="b@x"))
    assert r is not None and r.id == 7
    assert (r.result.action, r.result.code, r.result.reason) == (pb.ACTION_REJECT, 550, "b@x")
    assert r.result.headers[0].name == "X-A" and dict(r.result.tags) == {"k": "v"}
    assert p.handle_now(request(pb.HOOK_MAIL_FROM)) is None  # async: awaited
    null_sender = await p.handle(request(pb.HOOK_MAIL_FROM, has_mail_from=True))
    assert null_sender.result.action == pb.ACTION_TEMPFAIL
    no_sender = await p.handle(request(pb.HOOK_MAIL_FROM))
    assert no_sender.result.action == pb.ACTION_CONTINUE
    accepted = await p.handle(request(pb.HOOK_HELO, helo="c.example"))
    assert accepted.result.action == pb.ACTION_ACCEPT and accepted.result.text == "c.example"
    unregistered = p.handle_now(request(pb.HOOK_DATA_START))
    assert unregistered is not None and unregistered.result.action == pb.ACTION_CONTINUE


async def test_handler_failures_become_error_replies() -> None:
    p = Plugin("t")
    p.hook("rcpt_to")(lambda ctx: 1 / 0)
    p.hook("helo")(lambda ctx: "yes")
    r = p.handle_now(request(pb.HOOK_RCPT_TO))
    assert r is not None and r.error == "ZeroDivisionError: division by zero"
    r = p.handle_now(request(pb.HOOK_HELO))
    assert r is not None and "handler returned str, not Result or None" in r.error


async def test_configure_passes_the_table_and_reports_failures() -> None:
    p = Plugin("t")
    seen = {}

    @p.configure
    def conf(config):  # type: ignore[no-untyped-def]
        if config.get("bad"):
            raise ValueError("bad is bad")
        seen.update(config)

    ok = pb.ConfigureRequest(config_json=json.dumps({"a": 1}), state_dir="/s")
    assert await p.apply_config(ok) == "" and seen == {"a": 1} and p.state_dir == "/s"
    bad = pb.ConfigureRequest(config_json=json.dumps({"bad": True}))
    assert await p.apply_config(bad) == "ValueError: bad is bad"
    assert await p.apply_config(pb.ConfigureRequest(config_json="[1]")) == "config must be a table"


def test_context_view_and_message() -> None:
    from elemta_plugin import Context

    raw = b"Subject: =?utf-8?q?h=C3=A9?=\r\nX-A: 1\r\nX-A: 2\r\n\r\nbody\r\n"
    c = Context("message", pb.Context(peer_ip="1.2.3.4", message=pb.Message(raw=raw),
                                      tags={"t": "v"}))
    assert c.peer_ip == "1.2.3.4" and c.tags["t"] == "v" and c.mail_from is None
    assert c.message is not None and c.message.get("Subject") == "hé"
    assert c.message.get_all("X-A") == ["1", "2"] and c.message.body == b"body\r\n"
    assert Context("helo", pb.Context()).message is None


def test_public_surface_is_pinned() -> None:
    import elemta_plugin

    from elemta_core.hooks.types import HookPoint

    assert set(elemta_plugin.__all__) == {"HOOKS", "Action", "Context", "FailurePolicy",
                                          "HeaderChange", "HeaderOp", "Message", "Plugin",
                                          "Result"}
    assert set(elemta_plugin.HOOKS) == {hp.value for hp in HookPoint}
