"""ARC (RFC 8617): validate the chain a message arrives with, and seal what we pass on.

Validation (plugin ``arc``) reports ``cv`` = none, pass or fail (temperror when a key
lookup could not be answered), enforcing the instance limit and checking every AMS and AS
through dkimpy. Sealing (plugin ``arc_seal``) adds ARC-Authentication-Results (a copy of
our Authentication-Results), ARC-Message-Signature and ARC-Seal with the configured key,
after DKIM signing so the seal covers the final message.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import Any

import dkim

from builtin_plugins.auth import results
from builtin_plugins.auth.base import AuthPlugin
from builtin_plugins.auth.config import AuthConfig
from builtin_plugins.auth.dkim_verify import DKIMPY_LOG
from builtin_plugins.auth.keys import DkimKey, DkimKeyError, KeyType, load_key
from builtin_plugins.auth.policy import printable
from elemta_core.dns.answer import DnsTemporaryError
from elemta_core.dns.sync import SyncResolver, dkim_txt_lookup
from elemta_core.hooks.context import HookContext
from elemta_core.hooks.types import CONTINUE, FailurePolicy, HeaderChange, HeaderOp, HookResult
from elemta_core.message.message import Message
from elemta_core.plugins.api import PluginServices

log = logging.getLogger("elemta.plugin.arc")


class ArcResult(str, enum.Enum):
    NONE = "none"
    PASS = "pass"
    FAIL = "fail"
    TEMPERROR = "temperror"


@dataclass(frozen=True, slots=True)
class ArcCheck:
    cv: ArcResult
    instances: int = 0
    reason: str = ""
    sets: tuple[dict[str, Any], ...] = ()

    def resinfo(self, client_ip: str) -> results.ResInfo:
        comment = f"i={self.instances}" if self.instances else ""
        if self.reason and self.cv is not ArcResult.PASS:
            comment = f"{comment} {self.reason}".strip()
        return results.ResInfo("arc", self.cv.value, comment=comment,
                               props=(("smtp.remote-ip", client_ip),))

    def as_dict(self) -> dict[str, Any]:
        return {"cv": self.cv.value, "instances": self.instances, "reason": self.reason,
                "sets": list(self.sets)}


def _set_summary(r: dict[str, Any]) -> dict[str, Any]:
    def t(v: Any) -> Any:
        return v.decode("utf-8", "replace") if isinstance(v, bytes) else v

    return {k: t(r[k]) for k in ("instance", "ams-domain", "ams-valid", "as-domain",
                                 "as-valid", "cv") if k in r}


def verify_arc(message: bytes, sync: SyncResolver | Any, max_instances: int = 50,
               min_key_bits: int = 1024) -> ArcCheck:
    """Validate the ARC chain. Blocking: call in a thread."""
    lookup = dkim_txt_lookup(sync) if isinstance(sync, SyncResolver) else sync
    try:
        a = dkim.ARC(message, logger=DKIMPY_LOG, minkey=min_key_bits)
        top, _ = a.sorted_arc_headers()
    except Exception as e:  # noqa: BLE001 - dkimpy's parser on hostile input
        return ArcCheck(ArcResult.FAIL, reason=printable(f"unparsable message: {e}", 120))
    if top == 0:
        return ArcCheck(ArcResult.NONE)
    if top > max_instances:
        return ArcCheck(ArcResult.FAIL, top, f"over the limit of {max_instances} instances")
    try:
        cv, sets, comment = a.verify(dnsfunc=lookup)
    except DnsTemporaryError as e:
        return ArcCheck(ArcResult.TEMPERROR, top, f"key lookup: {e}")
    except Exception as e:  # noqa: BLE001 - hostile ARC headers: a failed chain, not a crash
        return ArcCheck(ArcResult.FAIL, top, printable(f"{type(e).__name__}: {e}", 120))
    summary = tuple(_set_summary(r) for r in sets)
    if cv == dkim.CV_Pass:
        return ArcCheck(ArcResult.PASS, top, "", summary)
    if cv == dkim.CV_None:
        return ArcCheck(ArcResult.NONE, top, printable(str(comment), 120), summary)
    return ArcCheck(ArcResult.FAIL, top, printable(str(comment), 120), summary)


def seal(message: Message, selector: str, domain: str, key: DkimKey,
         authserv_id: str) -> list[HeaderChange]:
    """The ARC set for ``message`` (which carries our A-R). Blocking: call in a thread."""
    lines = dkim.ARC(message.raw, logger=DKIMPY_LOG, linesep=b"\r\n").sign(
        selector.encode(), domain.encode(), key.private, authserv_id.encode())
    out: list[HeaderChange] = []
    for line in reversed(lines):  # ADDs are prepended: reversed keeps ARC-Seal on top
        name, _, value = line.decode("utf-8", "replace").partition(":")
        out.append(HeaderChange(HeaderOp.ADD, name.strip(), " ".join(value.split())))
    return out


class _ArcBase(AuthPlugin):
    async def _verify(self, ctx: HookContext) -> dict[str, str]:
        assert ctx.message is not None
        chk = await self.runtime.run(verify_arc, ctx.message.raw, self.runtime.sync,
                                     self.config.arc_max_instances,
                                     self.config.dkim_min_key_bits)
        return {"arc.cv": chk.cv.value, "arc.instances": str(chk.instances),
                **results.tag("arc", [chk.resinfo(ctx.peer_ip)])}


class ArcVerifyPlugin(_ArcBase):
    name = "arc"
    version = "1.0.0"
    description = "ARC chain validation (RFC 8617)"
    priority = 53
    failure_policy = FailurePolicy.CONTINUE

    async def on_message(self, ctx: HookContext) -> HookResult:
        if not self.config.arc_enabled or ctx.message is None:
            return CONTINUE
        tags = await self._verify(ctx)
        return HookResult(tags=tags, headers=results.publish(ctx, self.authserv_id, tags))


class ArcSealPlugin(_ArcBase):
    name = "arc_seal"
    version = "1.0.0"
    description = "ARC sealing (RFC 8617) of messages we pass on"
    priority = 95  # after dkim_sign: the seal covers the final message
    failure_policy = FailurePolicy.CONTINUE

    def __init__(self, config: AuthConfig | None, services: PluginServices) -> None:
        super().__init__(config, services)
        self.key: DkimKey | None = None

    async def start(self) -> None:
        cfg = self.config
        if not cfg.arc_seal_key:
            raise RuntimeError("arc_seal needs authentication.arc_seal_domain, "
                               "arc_seal_selector and arc_seal_key")
        path = cfg.arc_seal_key
        if self.services.config is not None and hasattr(self.services.config, "resolve"):
            path = str(self.services.config.resolve(path))
        try:
            key = load_key(path)
        except DkimKeyError as e:
            raise RuntimeError(f"authentication.arc_seal_key: {e}") from None
        if key.type is not KeyType.RSA:
            raise RuntimeError("authentication.arc_seal_key: ARC seals with RSA (RFC 8617); "
                               "give an RSA key")
        self.key = key
        await super().start()

    async def on_message(self, ctx: HookContext) -> HookResult:
        if ctx.message is None or self.key is None:
            return CONTINUE
        new: dict[str, str] = {}
        if "arc.cv" not in ctx.tags:
            new = await self._verify(ctx)
        cv = new.get("arc.cv") or ctx.tags.get("arc.cv", "none")
        pre = results.publish(ctx, self.authserv_id, new) if new or \
            results.current_header(ctx) is None else ()
        if cv == ArcResult.TEMPERROR.value:
            log.warning("not sealing %s: the ARC chain could not be validated now",
                        ctx.transaction_id)
            return HookResult(tags={**new, "arc.sealed": "no"}, headers=pre)
        msg = ctx.message.with_changes([*ctx.header_changes, *pre])
        try:
            arc_set = await self.runtime.run(seal, msg, self.config.arc_seal_selector,
                                             self.config.arc_seal_domain, self.key,
                                             self.authserv_id)
        except dkim.DKIMException as e:  # e.g. the instance limit is reached
            log.warning("not sealing %s: %s", ctx.transaction_id, e)
            return HookResult(tags={**new, "arc.sealed": "no"}, headers=pre)
        return HookResult(tags={**new, "arc.sealed": "yes" if arc_set else "no"},
                          headers=(*pre, *arc_set))
