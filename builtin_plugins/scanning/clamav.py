"""The ``antivirus`` plugin: every message through clamd (INSTREAM) before it is queued.

An infected message is rejected, quarantined or discarded per ``[antivirus] action``, with
the virus name in the log and the reply. Tags for later plugins: ``virus.status``
(clean, infected, unscanned) and ``virus.name``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar

from builtin_plugins.scanning.clamd_client import ClamdClient, ClamdError, ScanStatus
from builtin_plugins.scanning.config import AntivirusConfig
from builtin_plugins.scanning.failure import scanner_failed
from elemta_core.hooks.context import HookContext
from elemta_core.hooks.types import HeaderChange, HeaderOp, HookResult
from elemta_core.plugins.api import Plugin, PluginServices

__all__ = ["ClamAVPlugin"]

SCANNED_HEADER = "X-Virus-Scanned"


class ClamAVPlugin(Plugin):
    name = "antivirus"
    version = "1.0.0"
    description = "ClamAV (clamd INSTREAM) virus scanning"
    priority = 80
    #: A backstop only: ``[antivirus] timeout`` bounds the scan itself.
    timeout = 120.0
    config_section: ClassVar[str | None] = "antivirus"
    Config: ClassVar[type | None] = AntivirusConfig

    def __init__(self, config: Any, services: PluginServices) -> None:
        super().__init__(config if config is not None else AntivirusConfig(), services)
        self.cfg: AntivirusConfig = self.config
        self.client = ClamdClient(self.cfg.address, self.cfg.chunk_size)
        self._software = f"ClamAV using Elemta on {services.hostname}"

    async def start(self) -> None:
        # clamd may start after us (it loads its database slowly): say so, but do not refuse.
        try:
            async with asyncio.timeout(min(self.cfg.timeout, 2.0)):
                ok = await self.client.ping()
        except (ClamdError, TimeoutError) as e:
            ok = False
            self.log.warning("clamd at %s is not answering yet: %s", self.cfg.clamd, e)
        if ok:
            self.log.info("clamd at %s answers", self.cfg.clamd)

    def _header(self, status: str) -> tuple[HeaderChange, ...]:
        if not self.cfg.add_header:
            return ()
        return (HeaderChange(HeaderOp.REPLACE, SCANNED_HEADER, f"{status} ({self._software})"),)

    def _oversize(self, qid: str, size: int, why: str) -> HookResult:
        mode = self.cfg.oversize
        self.log.info("%s not virus-scanned: %s (size %d); oversize = %s", qid, why, size, mode)
        tags = {"virus.status": "unscanned"}
        if mode == "reject":
            return HookResult.reject("Message too large to be scanned for viruses", 552, "5.3.4",
                                     tags=tags, reason=f"antivirus: {why}")
        if mode == "tempfail":
            return HookResult.tempfail("Message cannot be scanned for viruses now", 452, "4.3.4",
                                       tags=tags, reason=f"antivirus: {why}")
        return HookResult(headers=self._header("skipped, too large"), tags=tags)

    async def on_message(self, ctx: HookContext) -> HookResult:
        msg = ctx.message
        if msg is None:
            return HookResult()
        qid = ctx.transaction_id or ctx.session_id
        size = msg.size
        if size > self.cfg.max_size:
            return self._oversize(qid, size, f"larger than max_size {self.cfg.max_size}")
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(self.cfg.timeout):
                result = await self.client.scan(msg.raw)
        except TimeoutError:
            return scanner_failed(self, ctx, self.cfg.failure_policy,
                                  f"clamd did not answer within {self.cfg.timeout:g}s",
                                  {"virus.status": "unscanned"})
        except ClamdError as e:
            return scanner_failed(self, ctx, self.cfg.failure_policy, str(e),
                                  {"virus.status": "unscanned"})
        ms = (time.perf_counter() - t0) * 1000
        if result.status is ScanStatus.TOO_LARGE:
            return self._oversize(qid, size, "past clamd's StreamMaxLength")
        if result.status is ScanStatus.CLEAN:
            self.log.debug("%s clean (%.1f ms)", qid, ms)
            return HookResult(headers=self._header("clean"), tags={"virus.status": "clean"})
        return self._infected(ctx, qid, result.virus, ms)

    def _infected(self, ctx: HookContext, qid: str, virus: str, ms: float) -> HookResult:
        # The name comes from clamd's database; keep it to one printable line in the reply.
        shown = "".join(c for c in virus if 32 <= ord(c) < 127)[:200] or "unknown"
        tags = {"virus.status": "infected", "virus.name": shown}
        reason = f"virus {shown}"
        self.log.warning("%s infected with %s from=<%s> (%.1f ms); action %s", qid, shown,
                         ctx.mail_from or "", ms, self.cfg.action)
        if self.cfg.action == "quarantine":
            return HookResult.quarantine(reason, tags={**tags, "quarantine.plugin": self.name})
        if self.cfg.action == "discard":
            return HookResult.discard(reason, tags=tags)
        return HookResult.reject(f"{self.cfg.reject_message}: {shown}", 554, "5.7.1",
                                 tags=tags, reason=reason)
