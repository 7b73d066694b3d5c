"""The ``antispam`` plugin: every message through Rspamd before it is queued.

Rspamd's action (or the one ``[antispam]`` thresholds choose) becomes the result:

==================  =================================================================
reject              ``reject_action``: 550 5.7.1, quarantine or discard
soft reject         451 4.7.1
greylist            451 4.7.1 (try again later)
rewrite subject     Subject rewritten, spam header added
add header          spam header added (``X-Spam: Yes``)
no action           accepted
discard/quarantine  Rspamd's custom actions of those names, done as such
==================  =================================================================

Rspamd's ``milter`` header changes are applied, X-Spam-Score/X-Spam-Status added, and the
verdict is left in tags for later plugins: ``spam.score``, ``spam.required``,
``spam.action``, ``spam.symbols`` (comma-separated), ``spam.status`` (scanned, unscanned).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar

from builtin_plugins.scanning.config import AntispamConfig
from builtin_plugins.scanning.failure import scanner_failed
from builtin_plugins.scanning.rspamd_client import (
    RspamdAction,
    RspamdClient,
    RspamdEnvelope,
    RspamdError,
    RspamdResult,
)
from elemta_core.hooks.context import HookContext
from elemta_core.hooks.types import HeaderChange, HeaderOp, HookResult
from elemta_core.message.message import Message
from elemta_core.plugins.api import Plugin, PluginServices

__all__ = ["RspamdPlugin"]

_TEMPFAIL_TEXT = "Try again later"


class RspamdPlugin(Plugin):
    name = "antispam"
    version = "1.0.0"
    description = "Rspamd spam scanning (/checkv2)"
    priority = 85
    #: A backstop only: ``[antispam] timeout`` bounds the scan itself.
    timeout = 120.0
    config_section: ClassVar[str | None] = "antispam"
    Config: ClassVar[type | None] = AntispamConfig

    def __init__(self, config: Any, services: PluginServices) -> None:
        super().__init__(config if config is not None else AntispamConfig(), services)
        self.cfg: AntispamConfig = self.config
        self.client = RspamdClient(self.cfg.rspamd_url)
        c = self.cfg
        self._thresholds: tuple[tuple[RspamdAction, float], ...] = tuple(
            (action, score) for action, score in (
                (RspamdAction.REJECT, c.reject_score),
                (RspamdAction.SOFT_REJECT, c.soft_reject_score),
                (RspamdAction.REWRITE_SUBJECT, c.rewrite_subject_score),
                (RspamdAction.ADD_HEADER, c.add_header_score),
                (RspamdAction.GREYLIST, c.greylist_score),
            ) if score is not None
        )

    async def start(self) -> None:
        await self.client.open()

    async def stop(self) -> None:
        await self.client.close()

    def decide(self, result: RspamdResult) -> RspamdAction:
        """Rspamd's action, or the configured thresholds' (see :class:`AntispamConfig`)."""
        if not self._thresholds or result.skipped:
            return result.action
        chosen, reached = RspamdAction.NO_ACTION, float("-inf")
        for action, threshold in self._thresholds:
            if result.score >= threshold > reached:
                chosen, reached = action, threshold
        return chosen

    async def on_message(self, ctx: HookContext) -> HookResult:
        msg = ctx.message
        if msg is None:
            return HookResult()
        qid = ctx.transaction_id or ctx.session_id
        if self.cfg.max_size and msg.size > self.cfg.max_size:
            self.log.info("%s not spam-scanned: size %d over max_size %d", qid, msg.size,
                          self.cfg.max_size)
            return HookResult(tags={"spam.status": "unscanned"})
        envelope = RspamdEnvelope(
            ip=ctx.peer_ip, helo=ctx.helo, mail_from=ctx.mail_from,
            recipients=tuple(ctx.recipients), queue_id=ctx.transaction_id,
            user=ctx.auth_user, mta_name=self.services.hostname,
        )
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(self.cfg.timeout):
                result = await self.client.check(msg.raw, envelope)
        except TimeoutError:
            return scanner_failed(self, ctx, self.cfg.failure_policy,
                                  f"rspamd did not answer within {self.cfg.timeout:g}s",
                                  {"spam.status": "unscanned"})
        except RspamdError as e:
            return scanner_failed(self, ctx, self.cfg.failure_policy, str(e),
                                  {"spam.status": "unscanned"})
        action = self.decide(result)
        self.log.info("%s spam score %.2f/%.2f rspamd=%s action=%s (%.1f ms)", qid, result.score,
                      result.required_score, result.action_name, action.value,
                      (time.perf_counter() - t0) * 1000)
        return self._result(msg, result, action)

    # -- verdict -> result -----------------------------------------------------------------

    def _headers(self, msg: Message, r: RspamdResult, action: RspamdAction) -> list[HeaderChange]:
        out: list[HeaderChange] = []
        if self.cfg.milter_headers:
            for name, which in r.milter.remove:
                if which < 0:  # counted from the end
                    which = len(msg.get_all(name)) + which + 1
                    if which <= 0:
                        continue
                out.append(HeaderChange(HeaderOp.REMOVE, name, index=which))
            out.extend(HeaderChange(HeaderOp.ADD, name, value) for name, value in r.milter.add)
        spam = action in (RspamdAction.REWRITE_SUBJECT, RspamdAction.ADD_HEADER,
                          RspamdAction.REJECT, RspamdAction.SOFT_REJECT, RspamdAction.DISCARD,
                          RspamdAction.QUARANTINE)
        if self.cfg.score_headers:
            out.append(HeaderChange(HeaderOp.REPLACE, "X-Spam-Score", f"{r.score:.2f}"))
            out.append(HeaderChange(
                HeaderOp.REPLACE, "X-Spam-Status",
                f"{'Yes' if spam else 'No'}, score={r.score:.2f} required={r.required_score:.2f}"
                f" action={action.value.replace(' ', '_')}"))
        if action in (RspamdAction.ADD_HEADER, RspamdAction.REWRITE_SUBJECT,
                      RspamdAction.QUARANTINE):
            out.append(HeaderChange(HeaderOp.REPLACE, self.cfg.spam_header, "Yes"))
        if action is RspamdAction.REWRITE_SUBJECT:
            subject = r.subject if r.subject is not None else (
                self.cfg.subject_prefix + (msg.get("Subject") or ""))
            out.append(HeaderChange(HeaderOp.REPLACE, "Subject", subject))
        return out

    def _result(self, msg: Message, r: RspamdResult, action: RspamdAction) -> HookResult:
        headers = tuple(self._headers(msg, r, action))
        tags = {
            "spam.status": "scanned",
            "spam.score": f"{r.score:.2f}",
            "spam.required": f"{r.required_score:.2f}",
            "spam.action": action.value,
            "spam.symbols": ",".join(sorted(r.symbols)),
        }
        reason = f"spam score {r.score:.2f}, rspamd action {r.action_name}"
        if action is RspamdAction.REJECT:
            verdict = self.cfg.reject_action
            if verdict == "quarantine":
                action = RspamdAction.QUARANTINE
            elif verdict == "discard":
                action = RspamdAction.DISCARD
            else:
                text = (r.smtp_message if self.cfg.use_smtp_message and r.smtp_message
                        else self.cfg.reject_message)
                return HookResult.reject(text, 550, "5.7.1", headers=headers, tags=tags,
                                         reason=reason)
        if action is RspamdAction.QUARANTINE:
            return HookResult.quarantine(reason, headers=headers,
                                         tags={**tags, "quarantine.plugin": self.name})
        if action is RspamdAction.DISCARD:
            return HookResult.discard(reason, headers=headers, tags=tags)
        if action in (RspamdAction.SOFT_REJECT, RspamdAction.GREYLIST):
            text = (r.smtp_message if self.cfg.use_smtp_message and r.smtp_message
                    else _TEMPFAIL_TEXT)
            return HookResult.tempfail(text, 451, "4.7.1", headers=headers, tags=tags,
                                       reason=reason)
        return HookResult(headers=headers, tags=tags)
