"""What `elemta auth spf` and `elemta auth verify` run: the server's own checks, on demand.

The CLI finds these through the installed plugin classes (``SpfPlugin.diagnose``,
``DmarcPlugin.diagnose``), so it runs exactly the code and resolver the server runs.
"""

from __future__ import annotations

from typing import Any

from builtin_plugins.auth import results
from builtin_plugins.auth.arc import verify_arc
from builtin_plugins.auth.config import AuthConfig
from builtin_plugins.auth.dkim_verify import dkim_tags, verify_dkim
from builtin_plugins.auth.dmarc import check_dmarc, enforce
from builtin_plugins.auth.runtime import AuthRuntime
from builtin_plugins.auth.spf import SpfCheck, check_spf
from elemta_core.dns.answer import DnsAnswer
from elemta_core.dns.resolver import Resolver
from elemta_core.message.message import Message


def _spf_dict(chk: SpfCheck) -> dict[str, Any]:
    return {"result": chk.result.value, "identity": chk.identity, "domain": chk.domain,
            "explanation": chk.explanation, "received_spf": chk.received_spf}


async def spf_report(resolver: Resolver, ip: str, mail_from: str, helo: str,
                     receiver: str, timeout: float = 20.0) -> dict[str, Any]:
    rt = AuthRuntime(None, 1, resolver)
    await rt.start()
    try:
        chk = await rt.run(check_spf, rt.sync, ip, mail_from, helo, receiver, timeout)
    finally:
        await rt.stop()
    return _spf_dict(chk)


async def verify_report(resolver: Resolver, raw: bytes, config: AuthConfig | None,
                        authserv_id: str, ip: str | None = None, mail_from: str | None = None,
                        helo: str | None = None) -> dict[str, Any]:
    cfg = config or AuthConfig()
    rt = AuthRuntime(None, 1, resolver)
    await rt.start()
    tags: dict[str, str] = {}
    out: dict[str, Any] = {"spf": None}
    try:
        if ip and (mail_from or helo):
            chk = await rt.run(check_spf, rt.sync, ip, mail_from or "", helo or "",
                               authserv_id, cfg.spf_timeout)
            out["spf"] = _spf_dict(chk)
            tags.update({"spf.result": chk.result.value, "spf.domain": chk.domain,
                         **results.tag("spf", [chk.resinfo(ip)])})
        sigs = await rt.run(verify_dkim, raw, rt.sync, cfg.dkim_max_signatures,
                            cfg.dkim_min_key_bits)
        out["dkim"] = [s.as_dict() for s in sigs]
        tags.update(dkim_tags(sigs))
        passing = [d for d in tags["dkim.pass_domains"].split(",") if d]
        async def txt(name: str) -> DnsAnswer:
            return await resolver.query(name, "TXT")

        dm = await check_dmarc(Message(raw), txt, tags.get("spf.result", "none"),
                               tags.get("spf.domain", ""), passing)
        out["dmarc"] = {"result": dm.result.value, "domain": dm.from_domain,
                        "policy_domain": dm.policy_domain, "policy": dm.policy.value,
                        "spf_aligned": dm.spf_aligned, "dkim_aligned": dm.dkim_aligned,
                        "reason": dm.reason}
        out["dmarc"]["disposition"] = enforce(dm, cfg.dmarc_policy).value
        tags.update(results.tag("dmarc", [dm.resinfo(enforce(dm, cfg.dmarc_policy))]))
        arc = await rt.run(verify_arc, raw, rt.sync, cfg.arc_max_instances,
                           cfg.dkim_min_key_bits)
        out["arc"] = arc.as_dict()
        tags.update(results.tag("arc", [arc.resinfo(ip or "")]))
    finally:
        await rt.stop()
    out["authentication_results"] = (f"{results.HEADER}: "
                                     f"{results.header_value(authserv_id, tags)}")
    return out
