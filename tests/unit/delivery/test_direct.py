from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from elemta_core.delivery.direct import QUEUE_HOOKS, DirectLocal
from elemta_core.delivery.maildir import MaildirWriter
from elemta_core.delivery.transports import Router, parse_transport
from elemta_core.hooks.pipeline import Pipeline, make_link
from elemta_core.hooks.types import CONTINUE, FailurePolicy, HookPoint
from elemta_core.queue.envelope import Envelope, Recipient, RecipientState

MSG = b"Subject: hi\r\n\r\nbody\r\n"


@pytest.fixture
async def writer(tmp_path: Path) -> AsyncIterator[MaildirWriter]:
    w = MaildirWriter(tmp_path / "mail")
    w.start()
    yield w
    await w.close()


def direct(writer: MaildirWriter, pipeline: Pipeline | None = None, **kw: object) -> DirectLocal:
    router = Router(frozenset({"example.org"}),
                    {"lmtp.example": parse_transport("t", "lmtp:[127.0.0.1]:24")}, None)
    pipe = pipeline or Pipeline([])
    return DirectLocal(writer, router, lambda: pipe, **{"max_hops": 50, **kw})  # type: ignore[arg-type]


def boxes(writer: MaildirWriter, user: str) -> list[str]:
    new = writer.root / "example.org" / user / "new"
    return os.listdir(new) if new.exists() else []


async def test_only_all_local_mail_without_queue_plugins(writer: MaildirWriter) -> None:
    d = direct(writer)
    assert d.eligible(["a@example.org", "b@EXAMPLE.org."])
    assert not d.eligible(["a@example.org", "x@elsewhere.example"])  # one remote: queued
    assert not d.eligible(["a@lmtp.example"])  # a transport rule is not local
    assert not d.eligible([])
    assert not direct(writer, enabled=False).eligible(["a@example.org"])
    for hook in QUEUE_HOOKS:
        pipe = Pipeline([make_link("p", hook, lambda ctx: CONTINUE, 10, 1.0,
                                   FailurePolicy.TEMPFAIL)])
        assert not direct(writer, pipe).eligible(["a@example.org"]), hook
    other = Pipeline([make_link("p", HookPoint.AFTER_QUEUE, lambda ctx: CONTINUE, 10, 1.0,
                                FailurePolicy.TEMPFAIL)])
    assert direct(writer, other).eligible(["a@example.org"])


async def test_every_copy_durable_before_true(writer: MaildirWriter) -> None:
    d = direct(writer)
    env = Envelope("Q1", "s@sender.example", [Recipient("a@example.org"), Recipient("b@example.org")])
    assert await d.deliver(env, MSG)
    assert [r.state for r in env.recipients] == [RecipientState.DELIVERED] * 2
    assert len(boxes(writer, "a")) == len(boxes(writer, "b")) == 1
    got = (writer.root / "example.org" / "a" / "new" / boxes(writer, "a")[0]).read_bytes()
    assert got == b"Return-Path: <s@sender.example>\r\nDelivered-To: a@example.org\r\n" + MSG
    assert d.delivered == 2


async def test_failed_copy_leaves_that_recipient_for_the_queue(writer: MaildirWriter) -> None:
    d = direct(writer)
    (writer.root / "example.org").mkdir(parents=True)
    (writer.root / "example.org" / "broken").write_text("a file where the mailbox should be")
    env = Envelope("Q2", "", [Recipient("ok@example.org"), Recipient("broken@example.org")])
    assert not await d.deliver(env, MSG)
    assert env.recipients[0].state is RecipientState.DELIVERED
    assert env.recipients[1].state is RecipientState.PENDING
    assert [r.address for r in env.pending()] == ["broken@example.org"]
    assert len(boxes(writer, "ok")) == 1


async def test_too_many_hops_is_left_to_the_queue(writer: MaildirWriter) -> None:
    d = direct(writer, max_hops=2)
    looped = b"Received: x\r\n" * 3 + MSG
    env = Envelope("Q3", "", [Recipient("a@example.org")])
    assert not await d.deliver(env, looped)
    assert env.recipients[0].state is RecipientState.PENDING
    assert boxes(writer, "a") == []

