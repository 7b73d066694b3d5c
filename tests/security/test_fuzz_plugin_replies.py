"""Hypothesis-driven fuzzing of protobuf plugin replies: garbage through the host's conversion
and through a live plugin process that sends it back. Never a crash: always a result that is
the conversion's own verdict, or the failure policy."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from elemta_core.external.catalog import parse_entry
from elemta_core.external.convert import HOOK_TO_PB, response_result
from elemta_core.external.errors import CallError
from elemta_core.external.proto_gen.elemta.plugin.v1 import plugin_pb2 as pb
from elemta_core.external.supervisor import State, Supervisor
from elemta_core.hooks.context import HookContext
from elemta_core.hooks.pipeline import Pipeline, failure_result, make_link
from elemta_core.hooks.types import Action, FailurePolicy, HookPoint, HookResult, smtp_reply
from elemta_core.message.message import Message

ECHO = Path(__file__).parent / "plugins" / "echo_reply.py"
I32 = st.integers(-(2 ** 31), 2 ** 31 - 1)
U32 = st.integers(0, 2 ** 32 - 1)
ANY_TEXT = st.text(max_size=80) | st.text(alphabet=st.characters(max_codepoint=0x7f), max_size=40)
HUGE = st.integers(2049, 20000).map(lambda n: "x" * n)

header = st.builds(
    lambda op, name, value, index: pb.HeaderChange(op=op, name=name, value=value, index=index),
    st.integers(-3, 8), ANY_TEXT | st.sampled_from(["X-Ok", "Subject", "Bad Name", "X:y", ""]),
    ANY_TEXT | HUGE.map(lambda s: s * 1), I32)
result = st.builds(
    lambda action, code, enh, text, headers, tags, reason: pb.Result(
        action=action, code=code, enhanced=enh, text=text, headers=headers, tags=tags,
        reason=reason),
    st.integers(-5, 40) | I32,
    st.sampled_from([0, 250, 421, 451, 550, 554, 599, 600, 199]) | U32,
    st.sampled_from(["", "5.7.1", "4.7.1", "2.0.0", "9.9.9", "5.7"]) | ANY_TEXT,
    ANY_TEXT | HUGE | st.sampled_from(["ok\r\n250 smuggled", "a\nb", "\x00"]),
    st.lists(header, max_size=70).map(lambda hs: hs if len(hs) < 5 or len(hs) > 64 else hs[:3]),
    st.dictionaries(ANY_TEXT, ANY_TEXT | HUGE, max_size=70),
    ANY_TEXT | st.integers(8190, 8200).map(lambda n: "r" * n),
)
response = st.builds(
    lambda r, err, has: pb.HookResponse(result=r, error=err) if has else pb.HookResponse(error=err),
    result, st.sampled_from(["", "", "", "boom"]) | ANY_TEXT, st.booleans())
garbage = st.binary(max_size=400) | response.map(lambda r: r.SerializeToString()).flatmap(
    lambda b: st.integers(0, max(len(b) - 1, 0)).map(lambda i: b[:i] + b"\xff" + b[i + 1:]))


def verdict(raw: bytes) -> HookResult | None:
    """The host's own verdict on these bytes: a result, or None for the failure policy."""
    try:
        return response_result(pb.HookResponse.FromString(raw))
    except (DecodeError, CallError):
        return None


def well_formed(r: HookResult) -> None:
    assert isinstance(r, HookResult)
    if r.action is not Action.CONTINUE:
        reply = smtp_reply(r)
        for line in reply.split("\r\n"):
            assert line[:3].isdigit() and line[3] in " -" and "\r" not in line and "\n" not in line
            assert "\x00" not in line
        assert reply[0] == {Action.REJECT: "5", Action.TEMPFAIL: "4"}.get(r.action, reply[0])
    for h in r.headers:
        assert ":" not in h.name and "\n" not in h.value and "\r" not in h.value


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(response)
def test_structured_replies_convert_or_are_refused(resp: pb.HookResponse) -> None:
    try:
        r = response_result(resp)
    except CallError as e:
        assert str(e)
        return
    well_formed(r)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(garbage)
def test_random_bytes_decoded_as_a_reply(raw: bytes) -> None:
    v = verdict(raw)
    if v is not None:
        well_formed(v)


# -- a live plugin process that sends them back ----------------------------------------------


class Live:
    """One echo plugin under a Supervisor, driven from a private event loop thread."""

    def __init__(self, tmp: Path, streaming: bool) -> None:
        d = tmp / ("stream" if streaming else "unary")
        d.mkdir(mode=0o755)
        script = d / "echo_reply.py"
        shutil.copy(ECHO, script)
        script.chmod(0o644)
        entry = parse_entry({
            "name": "echo", "command": ["{python}", "echo_reply.py"],
            "sha256": {"echo_reply.py": hashlib.sha256(script.read_bytes()).hexdigest()},
            "mode": "stream" if streaming else "unary", "hooks_timeout_ms": 5000,
            "env": {"ECHO_STREAMING": "1" if streaming else "0"}, "max_restarts": 1000,
        }, "x", d, "")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.sup = Supervisor(entry, "localhost", tmp / f"state-{d.name}")
        self.run(self.sup.start())
        hp = HookPoint.MESSAGE

        async def call(ctx: HookContext) -> HookResult:
            return await self.sup.call(HOOK_TO_PB[hp], ctx)

        self.pipe = Pipeline([make_link("echo", hp, call, 100, 5.0, FailurePolicy.TEMPFAIL)])

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def send(self, raw: bytes) -> HookResult:
        ctx = HookContext(session_id="fuzz", peer_ip="127.0.0.1", peer_port=1,
                          local_ip="127.0.0.1", local_port=25)
        ctx.begin_transaction("FUZZ")
        ctx.message = Message(raw)
        return self.run(self.pipe.run(HookPoint.MESSAGE, ctx))  # type: ignore[no-any-return]

    def wait_ready(self, timeout: float = 10.0) -> None:
        async def ready() -> None:
            while self.sup.state is not State.READY:
                await asyncio.sleep(0.02)

        self.run(asyncio.wait_for(ready(), timeout))

    def close(self) -> None:
        self.run(self.sup.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def unary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    live = Live(tmp_path_factory.mktemp("echo"), streaming=False)
    yield live
    assert live.sup.state is State.READY and live.sup.restarts == 0, live.sup.last_error
    live.close()


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    live = Live(tmp_path_factory.mktemp("echo"), streaming=True)
    yield live
    assert live.sup.state is State.READY and live.sup.restarts == 0, live.sup.last_error
    live.close()


TEMPFAIL = failure_result(FailurePolicy.TEMPFAIL)


def expected(raw: bytes) -> str:
    v = verdict(raw)
    return smtp_reply(v) if v is not None and v.action is not Action.CONTINUE else (
        "continue" if v is not None else smtp_reply(TEMPFAIL))


def got(r: HookResult) -> str:
    well_formed(r)
    return smtp_reply(r) if r.action is not Action.CONTINUE else "continue"


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(garbage | response.map(lambda r: r.SerializeToString()))
def test_live_unary_plugin_sends_garbage(unary: Live, raw: bytes) -> None:
    """Random bytes as the whole gRPC answer: the host's verdict, else the failure policy."""
    assert got(unary.send(raw)) == expected(raw)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(response)
def test_live_streaming_plugin_sends_malformed_replies(stream: Live, resp: pb.HookResponse) -> None:
    """Structured garbage over the hook stream: each caller gets its own answer's verdict."""
    raw = resp.SerializeToString()
    assert got(stream.send(raw)) == expected(raw)
    assert stream.sup.state is State.READY
