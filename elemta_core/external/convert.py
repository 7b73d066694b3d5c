"""HookContext and HookResult to and from their protobuf twins.

Everything coming back from a plugin is checked here: an unknown action, an SMTP code of
the wrong class, a header that would inject a line, oversized tags … each is a
:class:`CallError` (the pipeline then applies the plugin's failure policy), never a crash.
"""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Any, cast

from elemta_core.external.errors import CallError
from elemta_core.external.proto_gen.elemta.plugin.v1 import plugin_pb2 as pb
from elemta_core.hooks.context import HookContext
from elemta_core.hooks.types import (
    CONTINUE,
    Action,
    FailurePolicy,
    HeaderChange,
    HeaderOp,
    HookPoint,
    HookResult,
)

HOOK_TO_PB: dict[HookPoint, int] = {hp: pb.Hook.Value(f"HOOK_{hp.name}") for hp in HookPoint}
PB_TO_HOOK: dict[int, HookPoint] = {v: k for k, v in HOOK_TO_PB.items()}

POLICY_FROM_PB: dict[int, FailurePolicy] = {
    pb.FAILURE_POLICY_UNSPECIFIED: FailurePolicy.TEMPFAIL,
    pb.FAILURE_POLICY_TEMPFAIL: FailurePolicy.TEMPFAIL,
    pb.FAILURE_POLICY_CONTINUE: FailurePolicy.CONTINUE,
    pb.FAILURE_POLICY_REJECT: FailurePolicy.REJECT,
}

_OP_TO_PB = {HeaderOp.ADD: pb.HEADER_OP_ADD, HeaderOp.REMOVE: pb.HEADER_OP_REMOVE,
             HeaderOp.REPLACE: pb.HEADER_OP_REPLACE}
_OP_FROM_PB = {v: k for k, v in _OP_TO_PB.items()}
_ACTIONS = tuple(Action)

#: RFC 5322 field name: printable US-ASCII except colon.
_FIELD_NAME = re.compile(r"[!-9;-~]{1,76}")
_ENHANCED = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")
_BAD_TEXT = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
MAX_TEXT = 2048
MAX_VALUE = 8192
MAX_TAGS = 64
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 4096
MAX_HEADERS = 64


def _hc_to_pb(h: HeaderChange) -> pb.HeaderChange:
    return pb.HeaderChange(op=_OP_TO_PB[h.op], name=h.name, value=h.value, index=h.index)


def context_to_pb(ctx: HookContext) -> pb.Context:
    """The whole context; strings that are None travel as "" (see ``has_mail_from``)."""
    c = pb.Context(
        session_id=ctx.session_id, peer_ip=ctx.peer_ip, peer_port=ctx.peer_port,
        local_ip=ctx.local_ip, local_port=ctx.local_port, helo=ctx.helo or "",
        esmtp=ctx.esmtp, tls=ctx.tls, tls_version=ctx.tls_version or "",
        tls_cipher=ctx.tls_cipher or "", auth_user=ctx.auth_user or "",
        auth_mechanism=ctx.auth_mechanism or "", transaction_id=ctx.transaction_id or "",
        mail_from=ctx.mail_from or "", has_mail_from=ctx.mail_from is not None,
        mail_options=ctx.mail_options, recipients=ctx.recipients,
        recipient=ctx.recipient or "", rcpt_options=ctx.rcpt_options,
        command=ctx.command or "", tags=ctx.tags, relay_allowed=ctx.relay_allowed,
    )
    if ctx.message is not None:
        c.message.raw = ctx.message.raw
    if ctx.header_changes:
        c.header_changes.extend(_hc_to_pb(h) for h in ctx.header_changes)
    ev = ctx.event
    if ev is not None:
        c.event.CopyFrom(pb.SecurityEvent(kind=ev.kind, detail=ev.detail, plugin=ev.plugin or "",
                                          data=ev.data))
    d = ctx.delivery
    if d is not None:
        c.delivery.CopyFrom(pb.DeliveryInfo(
            queue_id=d.queue_id, recipient=d.recipient or "", attempt=d.attempt,
            status=d.status, code=d.code or 0, text=d.text, destination=d.destination))
    if ctx.extra:
        for k, v in ctx.extra.items():
            if isinstance(v, (str, int, float, bool)):
                c.extra[k] = str(v)
    return c


def result_to_pb(r: HookResult) -> pb.Result:
    """A HookResult as a plugin would send it (the SDKs' job; used by tests and tooling)."""
    return pb.Result(action=cast(Any, int(r.action)), code=r.code or 0, enhanced=r.enhanced or "",
                     text=r.text or "", headers=[_hc_to_pb(h) for h in r.headers],
                     tags=dict(r.tags), reason=r.reason or "")


def result_from_pb(r: pb.Result) -> HookResult:
    """Validate and convert a plugin's answer; anything malformed is a CallError."""
    action_n = r.action
    if action_n == 0 and not (r.headers or r.tags or r.code or r.text or r.reason):
        return CONTINUE
    if not 0 <= action_n < len(_ACTIONS):
        raise CallError(f"malformed reply: unknown action {action_n}")
    action = _ACTIONS[action_n]
    code = r.code
    if code:
        lo = {Action.REJECT: 500, Action.TEMPFAIL: 400}.get(action)
        if lo is not None and not lo <= code < lo + 100:
            raise CallError(f"malformed reply: SMTP code {code} does not fit action {action.name}")
        if lo is None and not 200 <= code <= 299:
            raise CallError(f"malformed reply: SMTP code {code} does not fit action {action.name}")
    enhanced = r.enhanced
    if enhanced and (not _ENHANCED.fullmatch(enhanced)
                     or (code and enhanced[0] != str(code)[0])):
        raise CallError(f"malformed reply: enhanced status code {enhanced!r}")
    text = r.text
    if len(text) > MAX_TEXT or _BAD_TEXT.search(text):
        raise CallError("malformed reply: text has control characters or is over "
                        f"{MAX_TEXT} characters")
    if len(r.reason) > MAX_VALUE:
        raise CallError(f"malformed reply: reason is over {MAX_VALUE} characters")
    headers: tuple[HeaderChange, ...] = ()
    if r.headers:
        if len(r.headers) > MAX_HEADERS:
            raise CallError(f"malformed reply: more than {MAX_HEADERS} header changes")
        headers = tuple(header_from_pb(h) for h in r.headers)
    tags: Any = MappingProxyType({})
    if r.tags:
        if len(r.tags) > MAX_TAGS:
            raise CallError(f"malformed reply: more than {MAX_TAGS} tags")
        for k, v in r.tags.items():
            if not k or len(k) > MAX_TAG_KEY or len(v) > MAX_TAG_VALUE:
                raise CallError(f"malformed reply: tag {k[:40]!r} is empty or too long")
        tags = dict(r.tags)
    return HookResult(action, code or None, enhanced or None, text or None, headers, tags,
                      r.reason or None)


def header_from_pb(h: pb.HeaderChange) -> HeaderChange:
    op = _OP_FROM_PB.get(h.op)
    if op is None:
        raise CallError(f"malformed reply: header change with op {h.op}")
    if not _FIELD_NAME.fullmatch(h.name):
        raise CallError(f"malformed reply: {h.name[:80]!r} is not a header field name")
    if len(h.value) > MAX_VALUE or _BAD_VALUE.search(h.value):
        raise CallError(f"malformed reply: header {h.name} value has line breaks or control "
                        "characters, or is too long")
    if h.index < 0:
        raise CallError(f"malformed reply: header index {h.index} is negative")
    return HeaderChange(op, h.name, h.value, h.index)


def response_result(resp: pb.HookResponse) -> HookResult:
    """The result of one HookResponse: its error text, if any, is a CallError."""
    if resp.error:
        raise CallError(f"plugin error: {resp.error[:500]}")
    if not resp.HasField("result"):
        return CONTINUE
    return result_from_pb(resp.result)
