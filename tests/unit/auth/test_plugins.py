"""The auth plugins on hook contexts: what they tag, when they act, and when they stay out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from builtin_plugins.auth.config import AuthConfig, PolicyAction
from builtin_plugins.auth.dmarc import DmarcPlugin
from builtin_plugins.auth.spf import SpfPlugin
from elemta_core.dns import DnsConfig, Resolver
from elemta_core.hooks.context import HookContext
from elemta_core.hooks.types import Action, HeaderOp
from elemta_core.message.message import Message
from elemta_core.plugins.api import PluginServices
from tests.support.dns_server import ZoneServer


@pytest.fixture
async def services(zone: ZoneServer, tmp_path: Path) -> AsyncIterator[PluginServices]:
    r = Resolver(DnsConfig(nameservers=[zone.address], timeout=0.3, lifetime=0.6))
    yield PluginServices("mx.test", tmp_path, resolver=r)
    await r.close()


def ctx(helo: str = "client.example.org", mail_from: str = "alice@example.org") -> HookContext:
    c = HookContext(session_id="s", peer_ip="192.0.2.10", helo=helo)
    c.begin_transaction("T1")
    c.mail_from = mail_from
    return c


async def test_spf_plugin_tags_helo_and_mail_from(zone: ZoneServer,
                                                  services: PluginServices) -> None:
    zone.txt("example.org", "v=spf1 ip4:192.0.2.0/24 -all")
    zone.txt("client.example.org", "v=spf1 -all")
    p = SpfPlugin(AuthConfig(spf_actions={"fail": PolicyAction.REJECT}), services)
    await p.start()
    try:
        c = ctx()
        helo = await p.on_helo(c)
        assert helo.tags["spf.helo.result"] == "fail"  # tagged; HELO results do not act
        c.tags.update(helo.tags)
        r = await p.on_mail_from(c)
        assert r.action is Action.CONTINUE and r.tags["spf.result"] == "pass"
        assert r.headers[0].name == "Received-SPF"
        assert "spf=pass" in r.tags["authres.spf"] and "smtp.helo=client.example.org" in \
            r.tags["authres.spf"]
        bad = await p.on_mail_from(ctx(mail_from="x@client.example.org"))
        assert (bad.action, bad.code, bad.enhanced) == (Action.REJECT, 550, "5.7.23")
        relayed = ctx()
        relayed.relay_allowed = True
        assert (await p.on_mail_from(relayed)).tags == {}  # outbound: not judged
    finally:
        await p.stop()


async def test_dmarc_plugin_computes_missing_spf_and_dkim(zone: ZoneServer,
                                                          services: PluginServices) -> None:
    zone.txt("example.org", "v=spf1 -all").txt("_dmarc.example.org", "v=DMARC1; p=reject")
    p = DmarcPlugin(AuthConfig(dmarc_policy="reject"), services)
    await p.start()
    try:
        c = ctx()
        c.message = Message(b"Authentication-Results: mx.test; dmarc=pass\r\n"
                            b"From: a@example.org\r\n\r\nhi\r\n")
        r = await p.on_message(c)
        assert r.action is Action.REJECT and r.code == 550
        assert r.tags["spf.result"] == "fail" and r.tags["dkim.result"] == "none"
        assert r.tags["dmarc.disposition"] == "reject"
        ops = [(h.op, h.name) for h in r.headers]
        assert (HeaderOp.REMOVE, "Authentication-Results") in ops  # the forged one
        [ar] = [h for h in r.headers if h.op is HeaderOp.ADD]
        assert ar.value.startswith("mx.test; spf=fail") and "dmarc=fail" in ar.value
    finally:
        await p.stop()
