"""Turning a check's result into a hook result: the configured action, tags and headers.

Each check (SPF, DKIM, DMARC) only says what it found; this is the one place where a
result becomes a rejection, a deferral, a quarantine or just a tag. The client is told a
generic text with the RFC 7372 enhanced code; the detail goes to the log via ``reason``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from builtin_plugins.auth.config import PolicyAction
from elemta_core.hooks.types import Action, HeaderChange, HookResult


@dataclass(frozen=True, slots=True)
class Refusal:
    """How to say no for one kind of check."""

    code: int
    enhanced: str
    text: str


def decide(action: PolicyAction, refusal: Refusal, *, reason: str,
           tags: Mapping[str, str], headers: tuple[HeaderChange, ...] = ()) -> HookResult:
    if action is PolicyAction.TAG:
        return HookResult(Action.CONTINUE, tags=dict(tags), headers=headers, reason=reason)
    if action is PolicyAction.QUARANTINE:
        return HookResult(Action.QUARANTINE, tags={**tags, "quarantine.plugin": "auth"},
                          headers=headers, reason=reason)
    if action is PolicyAction.TEMPFAIL:
        code = refusal.code if 400 <= refusal.code < 500 else 451
        enh = refusal.enhanced if refusal.enhanced.startswith("4") else "4" + refusal.enhanced[1:]
        return HookResult(Action.TEMPFAIL, code, enh, refusal.text, headers, dict(tags), reason)
    code = refusal.code if 500 <= refusal.code < 600 else 550
    enh = refusal.enhanced if refusal.enhanced.startswith("5") else "5" + refusal.enhanced[1:]
    return HookResult(Action.REJECT, code, enh, refusal.text, headers, dict(tags), reason)


def printable(text: str, limit: int = 200) -> str:
    """Untrusted text (an SPF exp=, a DNS error) made safe for an SMTP reply or a comment."""
    clean = "".join(c if 32 <= ord(c) < 127 else " " for c in text)
    clean = " ".join(clean.split())
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."
