"""HookContext/HookResult across the wire: every field, and malformed replies as errors."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from elemta_core.external.convert import (
    HOOK_TO_PB,
    PB_TO_HOOK,
    context_to_pb,
    response_result,
    result_from_pb,
    result_to_pb,
)
from elemta_core.external.errors import CallError
from elemta_core.external.proto_gen.elemta.plugin.v1 import plugin_pb2 as pb
from elemta_core.hooks.context import DeliveryInfo, HookContext, SecurityEvent
from elemta_core.hooks.types import CONTINUE, Action, HeaderChange, HeaderOp, HookPoint, HookResult
from elemta_core.message.message import Message


def full_context() -> HookContext:
    return HookContext(
        session_id="s1", peer_ip="192.0.2.7", peer_port=4567, local_ip="127.0.0.1",
        local_port=25, helo="client.example", esmtp=True, tls=True, tls_version="TLSv1.3",
        tls_cipher="TLS_AES_256_GCM_SHA384", auth_user="alice", auth_mechanism="PLAIN",
        transaction_id="Q1", mail_from="", mail_options=["SIZE=10"], recipients=["a@x"],
        recipient="b@x", rcpt_options=["NOTIFY=NEVER"], command="XFOO bar",
        message=Message(b"Subject: s\r\n\r\nbody\r\n"), tags={"spf.result": "pass"},
        header_changes=[HeaderChange(HeaderOp.REMOVE, "X-Old", index=2)],
        event=SecurityEvent("plugin_failed", "boom", plugin="p", data={"hook": "rcpt_to"}),
        delivery=DeliveryInfo("Q1", "b@x", 2, "deferred", 451, "try later", "mx.example"),
        relay_allowed=True, extra={"n": 3, "obj": object()},
    )


def test_every_hook_point_has_a_protocol_value() -> None:
    assert len(HOOK_TO_PB) == len(HookPoint) == len(pb.Hook.values()) - 1
    assert all(PB_TO_HOOK[v] is hp for hp, v in HOOK_TO_PB.items())


def test_every_context_field_crosses_the_wire() -> None:
    c = context_to_pb(full_context())
    c = pb.Context.FromString(c.SerializeToString())
    assert (c.session_id, c.peer_ip, c.peer_port, c.local_ip, c.local_port) == (
        "s1", "192.0.2.7", 4567, "127.0.0.1", 25)
    assert (c.helo, c.esmtp, c.tls, c.tls_version, c.tls_cipher) == (
        "client.example", True, True, "TLSv1.3", "TLS_AES_256_GCM_SHA384")
    assert (c.auth_user, c.auth_mechanism, c.transaction_id) == ("alice", "PLAIN", "Q1")
    assert c.mail_from == "" and c.has_mail_from  # the null sender, not "no sender"
    assert list(c.mail_options) == ["SIZE=10"] and list(c.recipients) == ["a@x"]
    assert c.recipient == "b@x" and list(c.rcpt_options) == ["NOTIFY=NEVER"]
    assert c.command == "XFOO bar" and c.message.raw == b"Subject: s\r\n\r\nbody\r\n"
    assert dict(c.tags) == {"spf.result": "pass"}
    assert [(h.op, h.name, h.index) for h in c.header_changes] == [
        (pb.HEADER_OP_REMOVE, "X-Old", 2)]
    assert (c.event.kind, c.event.detail, c.event.plugin, dict(c.event.data)) == (
        "plugin_failed", "boom", "p", {"hook": "rcpt_to"})
    d = c.delivery
    assert (d.queue_id, d.recipient, d.attempt, d.status, d.code, d.text, d.destination) == (
        "Q1", "b@x", 2, "deferred", 451, "try later", "mx.example")
    assert c.relay_allowed and dict(c.extra) == {"n": "3"}
    names = {f.name for f in dataclasses.fields(HookContext) if not f.name.startswith("_")}
    assert names - {"mail_from"} <= {f.name for f in pb.Context.DESCRIPTOR.fields}


def test_a_minimal_context_has_no_message_and_no_sender() -> None:
    c = context_to_pb(HookContext(session_id="s", peer_ip="::1"))
    assert not c.HasField("message") and not c.has_mail_from and not c.HasField("event")


def test_every_result_field_round_trips() -> None:
    r = HookResult(Action.REJECT, 554, "5.7.0", "go away\nnow",
                   (HeaderChange(HeaderOp.ADD, "X-A", "1"),
                    HeaderChange(HeaderOp.REPLACE, "X-B", "2"),
                    HeaderChange(HeaderOp.REMOVE, "X-C", index=1)),
                   {"spam.score": "9.5"}, "matched rule 7")
    back = result_from_pb(pb.Result.FromString(result_to_pb(r).SerializeToString()))
    assert back == HookResult(r.action, r.code, r.enhanced, r.text, r.headers,
                              {"spam.score": "9.5"}, r.reason)


def test_an_empty_result_is_the_shared_continue() -> None:
    assert result_from_pb(pb.Result()) is CONTINUE
    assert response_result(pb.HookResponse(id=1)) is CONTINUE


@pytest.mark.parametrize(("result", "message"), [
    (pb.Result(action=9), "unknown action 9"),
    (pb.Result(action=pb.ACTION_REJECT, code=451), "SMTP code 451 does not fit action REJECT"),
    (pb.Result(action=pb.ACTION_TEMPFAIL, code=550), "does not fit action TEMPFAIL"),
    (pb.Result(action=pb.ACTION_ACCEPT, code=550), "does not fit action ACCEPT"),
    (pb.Result(action=pb.ACTION_REJECT, enhanced="5.x.1"), "enhanced status code"),
    (pb.Result(action=pb.ACTION_REJECT, code=550, enhanced="4.7.1"), "enhanced status code"),
    (pb.Result(action=pb.ACTION_REJECT, text="a\r\n250 ok"), "control characters"),
    (pb.Result(action=pb.ACTION_REJECT, text="x" * 3000), "over 2048"),
    (pb.Result(headers=[pb.HeaderChange(name="X")]), "header change with op 0"),
    (pb.Result(headers=[pb.HeaderChange(op=1, name="")]), "is not a header field name"),
    (pb.Result(headers=[pb.HeaderChange(op=1, name="To: x")]), "is not a header field name"),
    (pb.Result(headers=[pb.HeaderChange(op=1, name="X", value="a\nBcc: b")]), "line breaks"),
    (pb.Result(headers=[pb.HeaderChange(op=2, name="X", index=-1)]), "negative"),
    (pb.Result(headers=[pb.HeaderChange(op=1, name="X")] * 65), "more than 64 header"),
    (pb.Result(tags={str(i): "" for i in range(65)}), "more than 64 tags"),
    (pb.Result(tags={"k": "v" * 5000}), "too long"),
    (pb.Result(reason="r" * 9000), "reason is over"),
])
def test_malformed_results_are_call_errors(result: pb.Result, message: str) -> None:
    with pytest.raises(CallError, match="malformed reply: .*" + message.replace("(", r"\(")):
        result_from_pb(result)


def test_a_plugin_error_is_a_call_error() -> None:
    with pytest.raises(CallError, match="plugin error: KeyError: 'x'"):
        response_result(pb.HookResponse(id=1, error="KeyError: 'x'"))


_text = st.text(max_size=120)
_header = st.builds(pb.HeaderChange, op=st.integers(0, 2**31 - 1), name=_text, value=_text,
                    index=st.integers(-(2**31), 2**31 - 1))
_results = st.builds(
    pb.Result, action=st.integers(0, 2**31 - 1), code=st.integers(0, 2**32 - 1),
    enhanced=_text, text=_text, headers=st.lists(_header, max_size=3),
    tags=st.dictionaries(_text, _text, max_size=4), reason=_text,
)


@given(_results)
@settings(max_examples=300, deadline=None)
def test_any_reply_is_a_result_or_a_call_error(result: pb.Result) -> None:
    """Whatever a plugin sends, conversion never fails any other way, and what it accepts
    renders as a well-formed SMTP reply."""
    from elemta_core.hooks.types import smtp_reply

    try:
        r = result_from_pb(pb.Result.FromString(result.SerializeToString()))
    except CallError:
        return
    reply = smtp_reply(r)
    for line in reply.split("\r\n"):
        assert line[:3].isdigit() and line[3] in " -" and "\r" not in line and "\n" not in line
    for h in r.headers:
        assert "\n" not in h.value and "\r" not in h.value and ":" not in h.name
