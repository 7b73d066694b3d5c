"""SPF (RFC 7208) for the MAIL FROM and HELO identities, on pyspf.

pyspf implements the whole evaluation (every mechanism and modifier, macros, exp=, the
10-lookup, void-lookup and MX/PTR limits); it runs in a worker thread and its DNS goes to
the shared resolver through a per-thread lookup hook, so each evaluation uses the resolver
it was given and never blocks the event loop.
"""

from __future__ import annotations

import enum
import ipaddress
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import spf as pyspf

from builtin_plugins.auth import results
from builtin_plugins.auth.base import AuthPlugin
from builtin_plugins.auth.policy import Refusal, decide, printable
from elemta_core.dns.answer import DnsTemporaryError
from elemta_core.dns.sync import Queries, spf_lookup
from elemta_core.hooks.context import HookContext
from elemta_core.hooks.types import CONTINUE, HeaderChange, HeaderOp, HookResult


class SpfResult(str, enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    SOFTFAIL = "softfail"
    NEUTRAL = "neutral"
    NONE = "none"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


@dataclass(frozen=True, slots=True)
class SpfCheck:
    """One identity's result, with what a header or a log line needs."""

    result: SpfResult
    identity: str  # "mailfrom" or "helo"
    domain: str
    sender: str
    explanation: str = ""
    received_spf: str = ""  # the Received-SPF value pyspf renders

    def resinfo(self, client_ip: str) -> results.ResInfo:
        prop = ("smtp.mailfrom", self.sender) if self.identity == "mailfrom" else (
            "smtp.helo", self.domain)
        comment = f"{client_ip}: {printable(self.explanation, 120)}" if self.explanation else ""
        return results.ResInfo("spf", self.result.value, comment=comment, props=(prop,))


# -- pyspf's DNS hook ------------------------------------------------------------------------
# pyspf calls the module-level spf.DNSLookup(name, qtype, strict, timeout). We install one
# dispatcher that answers from the lookup bound to the calling thread, falling back to
# pyspf's own for threads that bound none (other users of pyspf in the same process).

_bound = threading.local()
_original_lookup: Callable[..., Any] = pyspf.DNSLookup


def _dispatch(name: str, qtype: str, strict: Any = True, timeout: float = 30) -> Any:
    lookup = getattr(_bound, "lookup", None)
    if lookup is None:
        return _original_lookup(name, qtype, strict, timeout)
    try:
        return lookup(name, qtype)
    except DnsTemporaryError as e:
        raise pyspf.TempError(f"DNS {e}") from None


pyspf.DNSLookup = _dispatch


def check_spf(sync: Queries, ip: str, sender: str, helo: str, receiver: str,
              timeout: float = 20.0) -> SpfCheck:
    """Evaluate SPF for ``sender`` (empty: the HELO identity).

    Blocking with a :class:`SyncResolver`: call in a thread (``AuthRuntime.check``).
    """
    identity = "mailfrom" if sender else "helo"
    domain = (sender.rpartition("@")[2] if sender else helo).lower().rstrip(".")
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return SpfCheck(SpfResult.PERMERROR, identity, domain, sender,
                        f"client address {ip!r} is not an IP address")
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        ip = str(addr.ipv4_mapped)
    if not domain or "." not in domain:
        # RFC 7208 §4.3: a malformed or single-label domain gives "none".
        return SpfCheck(SpfResult.NONE, identity, domain, sender, "no usable domain")
    _bound.lookup = spf_lookup(sync)
    try:
        q = pyspf.query(i=ip, s=sender, h=helo or domain, receiver=receiver,
                        timeout=timeout, querytime=timeout)
        res, _code, expl = q.check()
        try:
            header = q.get_header(res, receiver=receiver)
        except Exception:  # noqa: BLE001 - pyspf renders from its own state; keep the result
            header = res
    except pyspf.TempError as e:
        res, expl, header = "temperror", str(e), "temperror"
    except pyspf.PermError as e:
        res, expl, header = "permerror", str(e), "permerror"
    finally:
        _bound.lookup = None
    try:
        result = SpfResult(res)
    except ValueError:  # "ambiguous" only in pyspf's harsh mode, which we do not use
        result = SpfResult.PERMERROR
    explanation = expl if result in (SpfResult.FAIL, SpfResult.TEMPERROR,
                                     SpfResult.PERMERROR) else ""
    return SpfCheck(result, identity, domain, sender, explanation, header)


_REFUSALS = {
    SpfResult.FAIL: Refusal(550, "5.7.23", "SPF validation failed"),
    SpfResult.SOFTFAIL: Refusal(550, "5.7.23", "SPF validation failed"),
    SpfResult.NEUTRAL: Refusal(550, "5.7.23", "SPF validation failed"),
    SpfResult.NONE: Refusal(550, "5.7.23", "SPF validation failed"),
    SpfResult.PASS: Refusal(550, "5.7.1", "Rejected by policy"),
    SpfResult.TEMPERROR: Refusal(451, "4.7.24", "SPF validation error, try again later"),
    SpfResult.PERMERROR: Refusal(550, "5.7.24", "SPF validation error"),
}


class SpfPlugin(AuthPlugin):
    """Checks the HELO and MAIL FROM identities; the per-result action decides."""

    name = "spf"
    version = "1.0.0"
    description = "SPF (RFC 7208) for MAIL FROM and HELO, with Received-SPF"
    priority = 50

    _helo_cache: ClassVar[str] = "auth.spf.helo"

    @staticmethod
    async def diagnose(resolver: Any, ip: str, mail_from: str, helo: str,
                       receiver: str) -> dict[str, Any]:
        """`elemta auth spf`: this plugin's check, outside the server."""
        from builtin_plugins.auth.diagnose import spf_report

        return await spf_report(resolver, ip, mail_from, helo, receiver)

    def _skip(self, ctx: HookContext) -> bool:
        return not self.config.spf_enabled or (
            self.config.skip_authenticated and (ctx.auth_user is not None or ctx.relay_allowed))

    async def _check(self, ctx: HookContext, sender: str) -> SpfCheck:
        ip, helo, receiver = ctx.peer_ip, ctx.helo or "", self.services.hostname
        timeout = self.config.spf_timeout
        return await self.runtime.check(
            lambda dns: check_spf(dns, ip, sender, helo, receiver, timeout),
            memo=("spf", ip, sender, helo, receiver, timeout))

    async def on_helo(self, ctx: HookContext) -> HookResult:
        if self._skip(ctx) or not self.config.spf_helo or not ctx.helo:
            return CONTINUE
        chk = await self._check(ctx, "")
        ctx.extra[self._helo_cache] = (ctx.helo, chk)
        return HookResult.with_tags({"spf.helo.result": chk.result.value,
                                     "spf.helo.domain": chk.domain})

    async def on_mail_from(self, ctx: HookContext) -> HookResult:
        if self._skip(ctx):
            return CONTINUE
        sender = ctx.mail_from or ""
        if sender:
            chk = await self._check(ctx, sender)
        else:
            cached = ctx.extra.get(self._helo_cache)
            # RFC 7208 §2.4: a null sender is checked as postmaster@<HELO identity>.
            chk = cached[1] if cached and cached[0] == ctx.helo else await self._check(ctx, "")
        infos = [chk.resinfo(ctx.peer_ip)]
        cached = ctx.extra.get(self._helo_cache)
        if sender and cached and cached[0] == ctx.helo:
            infos.append(cached[1].resinfo(ctx.peer_ip))
        tags = {"spf.result": chk.result.value, "spf.domain": chk.domain,
                "spf.identity": chk.identity, **results.tag("spf", infos)}
        headers: tuple[HeaderChange, ...] = ()
        if self.config.spf_received_header and chk.received_spf:
            headers = (HeaderChange(HeaderOp.ADD, "Received-SPF", chk.received_spf),)
        refusal = _REFUSALS[chk.result]
        if chk.result is SpfResult.FAIL and chk.explanation:
            refusal = Refusal(refusal.code, refusal.enhanced,
                              f"SPF validation failed: {printable(chk.explanation, 180)}")
        return decide(self.config.spf_action(chk.result.value), refusal,
                      reason=f"spf={chk.result.value} {chk.domain}: {chk.explanation}",
                      tags=tags, headers=headers)

    def on_message(self, ctx: HookContext) -> HookResult:
        if results.TAG_PREFIX + "spf" not in ctx.tags:
            return CONTINUE
        return HookResult(headers=results.publish(ctx, self.authserv_id, {}))
