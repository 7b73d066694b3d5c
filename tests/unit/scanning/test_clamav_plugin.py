"""The antivirus plugin against a scripted clamd: verdict -> action, size limits, failures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from builtin_plugins.scanning.clamav import ClamAVPlugin
from builtin_plugins.scanning.config import AntivirusConfig
from elemta_core.hooks.context import HookContext, SecurityEvent
from elemta_core.hooks.pipeline import PluginUnavailable
from elemta_core.hooks.types import Action, FailurePolicy, HeaderOp
from elemta_core.message.message import Message
from elemta_core.plugins.api import PluginServices
from tests.support.ports import free_port
from tests.unit.scanning.test_clamd_client import FakeClamd

RAW = b"Subject: s\r\nX-Virus-Scanned: forged\r\n\r\n" + b"body\r\n" * 100


@pytest.fixture
async def clamd() -> AsyncIterator[tuple[FakeClamd, str]]:
    fake = FakeClamd()
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    yield fake, f"tcp://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    server.close()
    await server.wait_closed()


@pytest.fixture
def make(tmp_path: Path, clamd: tuple[FakeClamd, str]) -> Any:
    def build(**cfg: Any) -> tuple[ClamAVPlugin, list[SecurityEvent]]:
        events: list[SecurityEvent] = []
        services = PluginServices(hostname="mx.test", state_dir=tmp_path,
                                  emit=lambda hook, ctx, ev: events.append(ev))
        cfg.setdefault("clamd", clamd[1])
        return ClamAVPlugin(AntivirusConfig(**cfg), services), events
    return build


def context() -> HookContext:
    return HookContext(session_id="s1", peer_ip="192.0.2.1", transaction_id="QID1",
                       mail_from="a@example.org", recipients=["b@example.net"],
                       message=Message(RAW))


async def test_clean_gets_the_scanned_header(make: Any, clamd: Any) -> None:
    plugin, _ = make()
    await plugin.start()
    r = await plugin.on_message(context())
    assert r.action is Action.CONTINUE and r.tags == {"virus.status": "clean"}
    assert clamd[0].streams == [RAW]
    msg = Message(RAW).with_changes(r.headers)
    assert msg.get_all("X-Virus-Scanned") == ["clean (ClamAV using Elemta on mx.test)"]
    plugin, _ = make(add_header=False)
    assert (await plugin.on_message(context())).headers == ()


async def test_infected_is_rejected_with_the_name(make: Any, clamd: Any) -> None:
    clamd[0].reply = b"stream: Test.Virus-1 FOUND\0"
    r = await make()[0].on_message(context())
    assert (r.action, r.code, r.enhanced) == (Action.REJECT, 554, "5.7.1")
    assert r.text == "Message contains a virus: Test.Virus-1"
    assert r.tags == {"virus.status": "infected", "virus.name": "Test.Virus-1"}


@pytest.mark.parametrize(("action", "expected"), [
    ("quarantine", Action.QUARANTINE), ("discard", Action.DISCARD)])
async def test_infected_quarantine_or_discard(make: Any, clamd: Any, action: str,
                                              expected: Action) -> None:
    clamd[0].reply = b"stream: Test.Virus-1 FOUND\0"
    r = await make(action=action)[0].on_message(context())
    assert r.action is expected and r.reason == "virus Test.Virus-1"
    if expected is Action.QUARANTINE:
        assert r.tags["quarantine.plugin"] == "antivirus"


@pytest.mark.parametrize(("oversize", "expected", "code"), [
    ("skip", Action.CONTINUE, None), ("reject", Action.REJECT, 552),
    ("tempfail", Action.TEMPFAIL, 452)])
async def test_over_max_size(make: Any, clamd: Any, oversize: str, expected: Action,
                             code: int | None) -> None:
    r = await make(max_size=100, oversize=oversize)[0].on_message(context())
    assert r.action is expected and r.code == code
    assert r.tags == {"virus.status": "unscanned"}
    assert clamd[0].streams == []
    if oversize == "skip":
        assert r.headers[0].op is HeaderOp.REPLACE
        assert r.headers[0].value.startswith("skipped, too large")


async def test_clamds_own_stream_limit_is_oversize(make: Any, clamd: Any) -> None:
    clamd[0].limit = 100
    r = await make(oversize="reject", chunk_size=64)[0].on_message(context())
    assert r.action is Action.REJECT and r.code == 552


async def test_failures(make: Any, clamd: Any) -> None:
    plugin, events = make(clamd=f"tcp://127.0.0.1:{free_port()}")
    await plugin.start()  # a clamd that is not up yet is a warning, not a start-up error
    with pytest.raises(PluginUnavailable, match="cannot connect"):
        await plugin.on_message(context())
    plugin, events = make(clamd=f"tcp://127.0.0.1:{free_port()}",
                          failure_policy=FailurePolicy.CONTINUE)
    r = await plugin.on_message(context())
    assert r.action is Action.CONTINUE and r.tags == {"virus.status": "unscanned"}
    assert events[0].plugin == "antivirus"
    clamd[0].mode = "silent"
    plugin, _ = make(timeout=0.2, failure_policy=FailurePolicy.TEMPFAIL)
    r = await plugin.on_message(context())
    assert r.action is Action.TEMPFAIL and "0.2s" in (r.reason or "")
