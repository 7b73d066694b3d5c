"""Authentication-Results (RFC 8601): one header per message, with our authserv-id.

Every check publishes its part as a tag (``authres.spf``, ``authres.dkim`` …), so later
plugins, external ones included, see the same results; the header is rebuilt from those
tags by whichever auth plugin runs last on the message hook (each one replaces the header
an earlier one placed). A-R headers already carrying our authserv-id were not written by
us and are removed on entry (RFC 8601 §5).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from elemta_core.hooks.context import HookContext
from elemta_core.hooks.types import HeaderChange, HeaderOp

HEADER = "Authentication-Results"
TAG_PREFIX = "authres."
#: Methods in the order they appear in the header.
METHOD_ORDER = ("iprev", "spf", "dkim", "dmarc", "arc")
_EXTRA_KEY = "auth.ar"
_TOKEN = re.compile(r"^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.@]+$")


@dataclass(frozen=True, slots=True)
class ResInfo:
    """One ``method=result (comment) ptype.property=value …`` clause."""

    method: str
    result: str
    comment: str = ""
    reason: str = ""
    props: tuple[tuple[str, str], ...] = ()

    def render(self) -> str:
        out = [f"{self.method}={self.result}"]
        if self.comment:
            out.append(f"({_comment(self.comment)})")
        if self.reason:
            out.append(f"reason={quote(self.reason)}")
        out += [f"{k}={quote(v)}" for k, v in self.props if v]
        return " ".join(out)


def quote(value: str) -> str:
    """A property value: a token as is, anything else as a quoted-string."""
    if value and _TOKEN.match(value):
        return value
    clean = "".join(c for c in value if c >= " " and c != "\x7f")
    return '"' + clean.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _comment(text: str) -> str:
    clean = "".join(c if c >= " " and c != "\x7f" else " " for c in text)
    return clean.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def tag(method: str, infos: list[ResInfo]) -> dict[str, str]:
    """The tag a check publishes for its clauses."""
    return {TAG_PREFIX + method: "; ".join(i.render() for i in infos)}


def header_value(authserv_id: str, tags: Mapping[str, str]) -> str:
    parts = [tags[TAG_PREFIX + m] for m in METHOD_ORDER if tags.get(TAG_PREFIX + m)]
    parts += [v for k, v in sorted(tags.items())
              if k.startswith(TAG_PREFIX) and k[len(TAG_PREFIX):] not in METHOD_ORDER and v]
    return f"{authserv_id}; " + ("; ".join(parts) if parts else "none")


def authserv_id_of(value: str) -> str:
    """The authserv-id an A-R header value claims (before the first ';', without comments)."""
    head = re.sub(r"\([^)]*\)", " ", value.split(";", 1)[0]).split()
    return head[0].lower() if head else ""


def forged_removals(ctx: HookContext, authserv_id: str) -> list[HeaderChange]:
    """Remove every incoming A-R header that claims to be ours."""
    if ctx.message is None or not ctx.message.may_have(HEADER):
        return []  # the common case, found without indexing the header
    ours = authserv_id.lower()
    out: list[HeaderChange] = []
    n = 0
    for f in ctx.message.fields:
        if f.name.lower() == HEADER.lower():
            n += 1
            if authserv_id_of(f.value) == ours:
                out.append(HeaderChange(HeaderOp.REMOVE, HEADER, index=n))
    # Bottom up, so each index still names the same field after the ones below it go.
    return out[::-1]


def publish(ctx: HookContext, authserv_id: str,
            new_tags: Mapping[str, str]) -> tuple[HeaderChange, ...]:
    """The header changes that (re)write this transaction's Authentication-Results.

    The first call in a transaction also removes forged A-R headers; later calls replace
    the header the previous call placed in ``ctx.header_changes``.
    """
    prev = ctx.extra.get(_EXTRA_KEY)
    changes: list[HeaderChange] = []
    if prev is not None and prev[0] == ctx.transaction_id:
        ctx.header_changes[:] = [c for c in ctx.header_changes if c is not prev[1]]
    else:
        changes = forged_removals(ctx, authserv_id)
    ar = HeaderChange(HeaderOp.ADD, HEADER, header_value(authserv_id, {**ctx.tags, **new_tags}))
    ctx.extra[_EXTRA_KEY] = (ctx.transaction_id, ar)
    changes.append(ar)
    return tuple(changes)


def current_header(ctx: HookContext) -> HeaderChange | None:
    """The A-R header change placed in this transaction, if any (for ARC sealing)."""
    prev = ctx.extra.get(_EXTRA_KEY)
    if prev is not None and prev[0] == ctx.transaction_id:
        change: HeaderChange = prev[1]
        return change
    return None
