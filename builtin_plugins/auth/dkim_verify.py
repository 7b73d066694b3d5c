"""DKIM verification (RFC 6376, Ed25519 per RFC 8463), every signature, on dkimpy.

dkimpy does the canonicalisation and crypto. Around it we fix what it gets wrong for a
receiver: a temporary DNS failure is ``temperror`` (dkimpy says fail), a revoked key
(empty ``p=``) or a missing one is ``permerror``, and the key record's ``h=`` (acceptable
hashes), ``k=`` (key type must match ``a=``) and ``t=s`` (no subdomains in ``i=``) are
enforced, as is ``s=`` (service types: the key must be for email); ``t=y`` (testing)
is reported in the comment.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import dkim
from dkim.util import InvalidTagValueList, parse_tag_value

from builtin_plugins.auth import dkim_canon, dkim_crypto, results
from builtin_plugins.auth.base import AuthPlugin
from builtin_plugins.auth.config import AuthConfig
from builtin_plugins.auth.policy import Refusal, decide, printable
from builtin_plugins.auth.runtime import AuthRuntime
from elemta_core.dns.answer import DnsTemporaryError
from elemta_core.dns.sync import NotCached, Queries, dkim_txt_lookup
from elemta_core.hooks.context import HookContext
from elemta_core.hooks.types import HookResult


class _LibraryLog:
    """dkimpy logs hostile input at ERROR; for us it is a result, so its log is debug."""

    def __init__(self, name: str) -> None:
        self._log = logging.getLogger(name)

    def debug(self, msg: object, *args: object) -> None:
        self._log.debug(msg, *args)

    info = warning = error = debug


DKIMPY_LOG = _LibraryLog("elemta.plugin.dkim.dkimpy")

dkim_crypto.install()  # key records parsed once, RSA signatures checked by OpenSSL
dkim_canon.install()  # relaxed canonicalisation without needless regex work


class DkimResult(str, enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    NEUTRAL = "neutral"
    NONE = "none"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


@dataclass(frozen=True, slots=True)
class SignatureResult:
    result: DkimResult
    domain: str = ""
    selector: str = ""
    identity: str = ""
    algorithm: str = ""
    b_prefix: str = ""  # the first characters of b=, to tell signatures apart (RFC 6008)
    reason: str = ""
    testing: bool = False

    def resinfo(self) -> results.ResInfo:
        comment = self.reason + (" (key in testing mode)" if self.testing else "")
        props = (("header.d", self.domain), ("header.i", self.identity),
                 ("header.s", self.selector), ("header.a", self.algorithm),
                 ("header.b", self.b_prefix))
        return results.ResInfo("dkim", self.result.value, comment=comment.strip(), props=props)

    def as_dict(self) -> dict[str, Any]:
        return {"result": self.result.value, "domain": self.domain, "selector": self.selector,
                "identity": self.identity, "algorithm": self.algorithm, "reason": self.reason,
                "testing": self.testing}


@dataclass
class _KeyProbe:
    """dkimpy's dnsfunc, remembering what the key lookup found."""

    lookup: Callable[..., bytes | None]
    record: bytes | None = None
    problem: str = ""
    tags: dict[bytes, bytes] = field(default_factory=dict)

    def __call__(self, name: bytes | str, timeout: float = 5) -> bytes | None:
        text = name.decode("utf-8", "replace") if isinstance(name, bytes) else name
        if any(not label for label in text.rstrip(".").split(".")):
            self.problem = f"invalid key name {text!r}"
            return None
        rec = self.lookup(text, timeout=timeout)  # DnsTemporaryError propagates
        if rec is None:
            self.problem = f"no key at {text.rstrip('.')}"
            return None
        self.record = rec
        self.tags, self.problem, usable = _examine_key(rec)
        return usable


@lru_cache(maxsize=1024)
def _examine_key(rec: bytes) -> tuple[dict[bytes, bytes], str, bytes | None]:
    """(tags, problem, the record as dkimpy should read it): a pure function of the record
    text, so memoised (the tags are only read)."""
    try:
        tags: dict[bytes, bytes] = parse_tag_value(rec)
    except InvalidTagValueList as e:
        return {}, f"malformed key record: {e}", None
    if tags.get(b"p", b"") == b"":
        return tags, "key revoked", None
    services = [x.strip() for x in _text(tags.get(b"s", b"*")).split(":")]
    if "*" not in services and "email" not in services:
        # dkimpy swallows this case and goes on with no key at all
        return tags, f"key s={_text(tags.get(b's'))} is not for email", None
    if b"s" in tags:  # checked here; dkimpy cannot read a list like s=tlsrpt:email
        rec = b"; ".join(k + b"=" + v for k, v in tags.items() if k != b"s")
    try:
        dkim.evaluate_pk(b"", rec)
    except Exception as e:  # noqa: BLE001 - KeyFormatError, or a parser's error on junk
        return tags, printable(f"unusable key record: {e}", 120), None
    return tags, "", rec


def _sig_fields(value: bytes) -> dict[bytes, bytes]:
    try:
        fields: dict[bytes, bytes] = parse_tag_value(value)
        return fields
    except InvalidTagValueList:
        return {}


def _text(b: bytes | None) -> str:
    return b.decode("utf-8", "replace") if b else ""


def verify_dkim(message: bytes, sync: Queries | Callable[..., bytes | None],
                max_signatures: int = 10, min_key_bits: int = 1024) -> list[SignatureResult]:
    """Verify every DKIM-Signature (up to ``max_signatures``).

    ``sync`` is one of the shared resolver's facades (blocking with a ``SyncResolver``:
    call in a thread), or a dkimpy-style ``dnsfunc``.
    """
    lookup = sync if callable(sync) else dkim_txt_lookup(sync)
    try:
        d = dkim.DKIM(message, logger=DKIMPY_LOG, minkey=min_key_bits)
    except Exception as e:  # noqa: BLE001 - a message dkimpy cannot parse at all
        return [SignatureResult(DkimResult.PERMERROR, reason=f"unparsable message: {e}")]
    sigs = [v for k, v in d.headers if k.lower() == b"dkim-signature"]
    out: list[SignatureResult] = []
    for idx, raw in enumerate(sigs[:max_signatures]):
        out.append(_verify_one(d, idx, raw, lookup))
    return out


def _verify_one(d: dkim.DKIM, idx: int, raw: bytes,
                lookup: Callable[..., bytes | None]) -> SignatureResult:
    f = _sig_fields(re.sub(rb"\r?\n[ \t]", b" ", raw))
    base = SignatureResult(DkimResult.NONE, domain=_text(f.get(b"d")).lower(),
                           selector=_text(f.get(b"s")), identity=_text(f.get(b"i")),
                           algorithm=_text(f.get(b"a")),
                           b_prefix=re.sub(r"\s+", "", _text(f.get(b"b")))[:8])
    probe = _KeyProbe(lookup)
    try:
        ok = d.verify(idx=idx, dnsfunc=probe)
    except DnsTemporaryError as e:
        return replace(base, result=DkimResult.TEMPERROR, reason=f"key lookup: {e}")
    except NotCached:
        raise  # the whole verification runs again, in a thread (AuthRuntime.check)
    except dkim.ValidationError as e:
        kind = DkimResult.FAIL if "body hash" in str(e) else DkimResult.PERMERROR
        return replace(base, result=kind, reason=printable(str(e), 120))
    except dkim.DKIMException as e:
        return replace(base, result=DkimResult.PERMERROR, reason=printable(str(e), 120))
    except Exception as e:  # noqa: BLE001 - dkimpy on hostile input: never a crash
        return replace(base, result=DkimResult.PERMERROR,
                       reason=printable(f"{type(e).__name__}: {e}", 120))
    if probe.problem:
        return replace(base, result=DkimResult.PERMERROR, reason=probe.problem)
    if not ok:
        return replace(base, result=DkimResult.FAIL, reason="signature did not verify")
    problem = _key_policy(probe.tags, f, base.domain)
    if problem:
        return replace(base, result=DkimResult.PERMERROR, reason=problem)
    flags = [x.strip() for x in _text(probe.tags.get(b"t")).split(":")]
    return replace(base, result=DkimResult.PASS, testing="y" in flags)


def _key_policy(key: dict[bytes, bytes], sig: dict[bytes, bytes], domain: str) -> str:
    """What RFC 6376 §3.6.1 asks of the key record and dkimpy does not check."""
    alg = _text(sig.get(b"a")).lower()
    ktype, _, hash_alg = alg.partition("-")
    k = _text(key.get(b"k", b"rsa")).strip().lower()
    if k != ktype:
        return f"key type k={k} does not match a={alg}"
    if b"h" in key:
        allowed = [x.strip().lower() for x in _text(key[b"h"]).split(":")]
        if hash_alg not in allowed:
            return f"key h= does not allow {hash_alg}"
    flags = [x.strip() for x in _text(key.get(b"t")).split(":")]
    if "s" in flags:
        ident = _text(sig.get(b"i")).rpartition("@")[2].lower().rstrip(".")
        if ident and ident != domain:
            return f"key t=s forbids i= in subdomain {ident}"
    return ""


def summary(sigs: list[SignatureResult]) -> DkimResult:
    """The message's DKIM result: pass if any signature passes, else the first one's."""
    if not sigs:
        return DkimResult.NONE
    if any(s.result is DkimResult.PASS for s in sigs):
        return DkimResult.PASS
    for kind in (DkimResult.TEMPERROR, DkimResult.FAIL, DkimResult.PERMERROR):
        if any(s.result is kind for s in sigs):
            return kind
    return sigs[0].result


def dkim_tags(sigs: list[SignatureResult]) -> dict[str, str]:
    passing = sorted({s.domain for s in sigs if s.result is DkimResult.PASS})
    infos = [s.resinfo() for s in sigs] or [results.ResInfo("dkim", "none")]
    return {"dkim.result": summary(sigs).value, "dkim.pass_domains": ",".join(passing),
            "dkim.signatures": str(len(sigs)), **results.tag("dkim", infos)}


#: Largest message verified on the event loop when its keys are cached. Measured (one
#: RSA-2048 signature): 4 KiB ~0.2-0.25 ms, 16 KiB ~0.4-0.5 ms, 64 KiB ~1-1.6 ms. Up to
#: 16 KiB the loop pauses well under a millisecond; beyond, the hand-off to a worker
#: thread is a small share of the verification's own cost.
INLINE_MAX_BYTES = 16 * 1024


async def run_verify_dkim(runtime: AuthRuntime, raw: bytes,
                          config: AuthConfig) -> list[SignatureResult]:
    """:func:`verify_dkim` as the plugins run it: inline when it can be, else in a thread."""
    limit, min_bits = config.dkim_max_signatures, config.dkim_min_key_bits
    return await runtime.check(lambda dns: verify_dkim(raw, dns, limit, min_bits),
                               inline=len(raw) <= INLINE_MAX_BYTES)


_REFUSALS = {
    DkimResult.TEMPERROR: Refusal(451, "4.7.5", "DKIM verification error, try again later"),
}
_DEFAULT_REFUSAL = Refusal(550, "5.7.20", "No passing DKIM signature found")


class DkimVerifyPlugin(AuthPlugin):
    """Verifies every DKIM signature; results become tags and Authentication-Results."""

    name = "dkim"
    version = "1.0.0"
    description = "DKIM verification (RFC 6376, RSA and Ed25519)"
    priority = 51

    async def on_message(self, ctx: HookContext) -> HookResult:
        if not self.config.dkim_enabled or ctx.message is None:
            return HookResult(headers=results.publish(ctx, self.authserv_id, {}))
        sigs = await run_verify_dkim(self.runtime, ctx.message.raw, self.config)
        tags = dkim_tags(sigs)
        headers = results.publish(ctx, self.authserv_id, tags)
        overall = summary(sigs)
        return decide(self.config.dkim_action(overall.value),
                      _REFUSALS.get(overall, _DEFAULT_REFUSAL),
                      reason="dkim=" + ", ".join(f"{s.result.value}({s.domain}: {s.reason})"
                                                 for s in sigs) if sigs else "dkim=none",
                      tags=tags, headers=headers)
