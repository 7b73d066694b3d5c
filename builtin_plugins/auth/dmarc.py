"""DMARC (RFC 7489): policy discovery, identifier alignment, p/sp/pct, local enforcement cap.

The organisational domain comes from the Public Suffix List. A message passes when an SPF
pass or a DKIM pass is aligned (relaxed: same organisational domain; strict: same domain)
with the RFC5322.From domain. The published policy is then capped by the local
``dmarc_policy``: ``none`` only reports, ``quarantine`` quarantines at most, ``reject``
honours a published ``p=reject``.
"""

from __future__ import annotations

import email.utils
import enum
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from publicsuffixlist import PublicSuffixList

from builtin_plugins.auth import results
from builtin_plugins.auth.base import AuthPlugin
from builtin_plugins.auth.config import AuthConfig, PolicyAction
from builtin_plugins.auth.dkim_verify import dkim_tags, run_verify_dkim
from builtin_plugins.auth.policy import Refusal, decide
from builtin_plugins.auth.spf import check_spf
from elemta_core.dns.answer import DnsAnswer, DnsStatus
from elemta_core.hooks.context import HookContext
from elemta_core.hooks.types import CONTINUE, HookResult
from elemta_core.message.message import Message


class DmarcResult(str, enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    NONE = "none"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


class Disposition(str, enum.Enum):
    NONE = "none"
    QUARANTINE = "quarantine"
    REJECT = "reject"

    @property
    def rank(self) -> int:
        return ("none", "quarantine", "reject").index(self.value)


class DmarcRecordError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class DmarcRecord:
    p: Disposition
    sp: Disposition | None = None
    pct: int = 100
    adkim: str = "r"
    aspf: str = "r"
    rua: str = ""
    ruf: str = ""


@lru_cache(maxsize=1024)
def parse_record(text: str) -> DmarcRecord:
    """RFC 7489 §6.3; unknown tags are ignored, bad values of known ones are errors.

    Memoised by the text (a record is a value; errors are raised afresh each time)."""
    parts = [p.strip() for p in text.split(";")]
    tags: dict[str, str] = {}
    for i, part in enumerate(p for p in parts if p):
        k, eq, v = part.partition("=")
        k, v = k.strip().lower(), v.strip()
        if not eq or not k:
            raise DmarcRecordError(f"malformed tag {part!r}")
        if i == 0 and (k != "v" or v != "DMARC1"):
            raise DmarcRecordError("record does not start with v=DMARC1")
        tags.setdefault(k, v)
    if "p" not in tags:
        if tags.get("rua"):
            tags["p"] = "none"  # §6.6.3: a record with rua but no p is treated as p=none
        else:
            raise DmarcRecordError("no p= tag")

    def disp(key: str) -> Disposition:
        try:
            return Disposition(tags[key].lower())
        except ValueError:
            raise DmarcRecordError(f"{key}={tags[key]!r} is not none/quarantine/reject") from None

    pct = 100
    if "pct" in tags:
        if not tags["pct"].isdigit() or not 0 <= int(tags["pct"]) <= 100:
            raise DmarcRecordError(f"pct={tags['pct']!r} is not 0-100")
        pct = int(tags["pct"])
    for key in ("adkim", "aspf"):
        if tags.get(key, "r").lower() not in ("r", "s"):
            raise DmarcRecordError(f"{key}={tags[key]!r} is not r or s")
    return DmarcRecord(p=disp("p"), sp=disp("sp") if "sp" in tags else None, pct=pct,
                       adkim=tags.get("adkim", "r").lower(), aspf=tags.get("aspf", "r").lower(),
                       rua=tags.get("rua", ""), ruf=tags.get("ruf", ""))


@lru_cache(maxsize=1)
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


@lru_cache(maxsize=4096)
def org_domain(domain: str) -> str:
    """The organisational domain (RFC 7489 §3.2); a public suffix is its own. Memoised: the
    list is loaded once, so the answer depends on the name alone."""
    domain = domain.lower().rstrip(".")
    return _psl().privatesuffix(domain) or domain


def aligned(a: str, b: str, mode: str) -> bool:
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    if not a or not b:
        return False
    return a == b if mode == "s" else org_domain(a) == org_domain(b)


@dataclass(frozen=True, slots=True)
class DmarcCheck:
    result: DmarcResult
    from_domain: str = ""
    policy_domain: str = ""
    record: DmarcRecord | None = None
    policy: Disposition = Disposition.NONE  # what the record asks, after sp= and pct=
    sampled_out: bool = False
    spf_aligned: bool = False
    dkim_aligned: bool = False
    reason: str = ""

    def resinfo(self, disposition: Disposition | None = None) -> results.ResInfo:
        """``dis=`` is what was done: the policy after the local cap (``disposition``)."""
        comment = ""
        if self.record is not None:
            sp = self.record.sp.value if self.record.sp else self.record.p.value
            done = disposition if disposition is not None else (
                self.policy if self.result is DmarcResult.FAIL else Disposition.NONE)
            comment = f"p={self.record.p.value} sp={sp} pct={self.record.pct} dis={done.value}"
        elif self.reason:
            comment = self.reason
        return results.ResInfo("dmarc", self.result.value, comment=comment,
                               props=(("header.from", self.from_domain),))


def from_domain(message: Message) -> tuple[str, str]:
    """(domain, problem) of the single RFC5322.From author (RFC 7489 §6.6.1)."""
    values = message.get_all("From")
    if not values:
        return "", "no From header"
    if len(values) > 1:
        return "", "several From headers"
    domains = {a.rpartition("@")[2].lower().rstrip(".")
               for _, a in email.utils.getaddresses(values) if a}
    if len(domains) != 1:
        return "", "From has no address" if not domains else "From names several domains"
    d = domains.pop()
    if not d or "." not in d:
        return "", "From has no usable domain"
    return d, ""


TxtLookup = Callable[[str], Awaitable[DnsAnswer]]


async def discover(domain: str, txt: TxtLookup) -> tuple[DmarcRecord | None, str, str]:
    """(record, the domain it was found at, problem) per RFC 7489 §6.6.3."""
    org = org_domain(domain)
    for where in dict.fromkeys((domain, org)):
        ans = await txt(f"_dmarc.{where}")
        if ans.status is DnsStatus.TEMPFAIL:
            return None, where, f"temperror: {ans.error}"
        recs = [r.decode("utf-8", "replace") for r in ans.records
                if r.startswith(b"v=DMARC1")] if ans.ok else []
        if len(recs) > 1:
            return None, where, "several DMARC records"  # §6.6.3: as if none
        if recs:
            try:
                return parse_record(recs[0]), where, ""
            except DmarcRecordError as e:
                return None, where, f"permerror: {e}"
    return None, org, ""


def evaluate(domain: str, record: DmarcRecord, policy_domain: str, spf_result: str,
             spf_domain: str, dkim_pass_domains: list[str],
             rand: Callable[[], float] = random.random) -> DmarcCheck:
    spf_ok = spf_result == "pass" and aligned(spf_domain, domain, record.aspf)
    dkim_ok = any(aligned(d, domain, record.adkim) for d in dkim_pass_domains)
    if spf_ok or dkim_ok:
        return DmarcCheck(DmarcResult.PASS, domain, policy_domain, record,
                          spf_aligned=spf_ok, dkim_aligned=dkim_ok)
    subdomain = policy_domain != domain
    policy = record.sp if subdomain and record.sp is not None else record.p
    sampled_out = record.pct < 100 and rand() * 100 >= record.pct
    if sampled_out:  # §6.6.4: the next less strict policy
        policy = {Disposition.REJECT: Disposition.QUARANTINE}.get(policy, Disposition.NONE)
    return DmarcCheck(DmarcResult.FAIL, domain, policy_domain, record, policy, sampled_out,
                      reason="no aligned SPF or DKIM pass")


async def check_dmarc(message: Message, txt: TxtLookup, spf_result: str, spf_domain: str,
                      dkim_pass_domains: list[str]) -> DmarcCheck:
    """Runs on the event loop: its lookups are the async resolver's, its work is small."""
    domain, problem = from_domain(message)
    if problem:
        return DmarcCheck(DmarcResult.PERMERROR, reason=problem)
    record, where, problem = await discover(domain, txt)
    if problem.startswith("temperror"):
        return DmarcCheck(DmarcResult.TEMPERROR, domain, where, reason=problem[11:])
    if problem.startswith("permerror"):
        return DmarcCheck(DmarcResult.PERMERROR, domain, where, reason=problem[11:])
    if record is None:
        return DmarcCheck(DmarcResult.NONE, domain, where, reason=problem)
    return evaluate(domain, record, where, spf_result, spf_domain, dkim_pass_domains)


def enforce(chk: DmarcCheck, cap: str) -> Disposition:
    """The disposition after the local cap (``dmarc_policy``)."""
    if chk.result is not DmarcResult.FAIL:
        return Disposition.NONE
    limit = Disposition(cap)
    return chk.policy if chk.policy.rank <= limit.rank else limit


_REFUSAL = Refusal(550, "5.7.1", "Email rejected per DMARC policy")


class DmarcPlugin(AuthPlugin):
    name = "dmarc"
    version = "1.0.0"
    description = "DMARC (RFC 7489) with alignment, p/sp/pct and a local enforcement cap"
    priority = 52  # after spf and dkim, whose tags it reads

    @staticmethod
    async def diagnose(resolver: Any, raw: bytes, config: AuthConfig | None, authserv_id: str,
                       ip: str | None = None, mail_from: str | None = None,
                       helo: str | None = None) -> dict[str, Any]:
        """`elemta auth verify`: SPF, DKIM, DMARC and ARC as the server runs them."""
        from builtin_plugins.auth.diagnose import verify_report

        return await verify_report(resolver, raw, config, authserv_id, ip, mail_from, helo)

    async def start(self) -> None:
        await super().start()
        await self.runtime.run(_psl)  # load the list off the event loop, once

    async def on_message(self, ctx: HookContext) -> HookResult:
        cfg = self.config
        if not cfg.dmarc_enabled or ctx.message is None or (
                cfg.skip_authenticated and (ctx.auth_user is not None or ctx.relay_allowed)):
            return CONTINUE
        tags = dict(ctx.tags)
        new: dict[str, str] = {}
        if "spf.result" not in tags and cfg.spf_enabled and ctx.mail_from is not None:
            # The spf plugin is not enabled: DMARC still needs the SPF result.
            ip, sender, helo = ctx.peer_ip, ctx.mail_from, ctx.helo or ""
            receiver = self.services.hostname
            spf = await self.runtime.check(
                lambda dns: check_spf(dns, ip, sender, helo, receiver, cfg.spf_timeout))
            new.update({"spf.result": spf.result.value, "spf.domain": spf.domain,
                        **results.tag("spf", [spf.resinfo(ctx.peer_ip)])})
        if "dkim.result" not in tags and cfg.dkim_enabled:
            sigs = await run_verify_dkim(self.runtime, ctx.message.raw, cfg)
            new.update(dkim_tags(sigs))
        tags.update(new)
        passing = [d for d in tags.get("dkim.pass_domains", "").split(",") if d]
        chk = await check_dmarc(ctx.message, self._txt, tags.get("spf.result", "none"),
                                tags.get("spf.domain", ""), passing)
        disposition = enforce(chk, cfg.dmarc_policy)
        new.update({"dmarc.result": chk.result.value, "dmarc.domain": chk.from_domain,
                    "dmarc.policy": chk.policy.value, "dmarc.disposition": disposition.value,
                    **results.tag("dmarc", [chk.resinfo(disposition)])})
        headers = results.publish(ctx, self.authserv_id, new)
        action = {Disposition.NONE: PolicyAction.TAG,
                  Disposition.QUARANTINE: PolicyAction.QUARANTINE,
                  Disposition.REJECT: PolicyAction.REJECT}[disposition]
        refusal = Refusal(_REFUSAL.code, _REFUSAL.enhanced,
                          f"Email rejected per DMARC policy for {chk.from_domain}")
        return decide(action, refusal, tags=new, headers=headers,
                      reason=f"dmarc={chk.result.value} {chk.from_domain} "
                             f"policy={chk.policy.value} {chk.reason}".strip())

    async def _txt(self, name: str) -> DnsAnswer:
        return await self.runtime.resolver.query(name, "TXT")
