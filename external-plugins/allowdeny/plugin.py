"""allowdeny: allow and deny lists (CIDR networks, domains, regexes) from a rules file that
is reloaded when it changes.

A session whose client network, HELO, sender or recipient matches an allow rule is tagged
``allowdeny=allow`` and skips every deny rule; otherwise a deny match rejects at that stage
(554 5.7.1 at connect, 550 5.7.1 later). Rules file (TOML, path relative to this directory
or absolute; config key ``rules_file``)::

    [allow]
    networks = ["192.0.2.0/24"]
    domains = ["partner.example"]        # sender or recipient domain, subdomains included
    senders = ['^ceo@example\\.com$']    # regexes on the envelope sender
    [deny]
    networks = ["203.0.113.0/24"]
    domains = ["spam.example"]
    senders = ['(?i)^bulk-']
    recipients = ['^nobody@']
    helo = ['(?i)\\.dynamic\\.']

A rules file that fails to parse keeps the previous rules (and logs why).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

from elemta_plugin import Context, Plugin, Result

log = logging.getLogger("allowdeny")
plugin = Plugin("allowdeny", version="1.0.0",
                description="CIDR, domain and regex allow/deny lists, reloaded on change",
                priority=20, failure_policy="tempfail")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass
class RuleSet:
    networks: list[Network] = field(default_factory=list)
    domains: list[str] = field(default_factory=list)
    senders: list[re.Pattern[str]] = field(default_factory=list)
    recipients: list[re.Pattern[str]] = field(default_factory=list)
    helo: list[re.Pattern[str]] = field(default_factory=list)

    @classmethod
    def parse(cls, table: Any, where: str) -> RuleSet:
        if not isinstance(table, dict):
            raise TypeError(f"[{where}] must be a table")
        unknown = set(table) - {"networks", "domains", "senders", "recipients", "helo"}
        if unknown:
            raise ValueError(f"[{where}] has unknown keys: {', '.join(sorted(unknown))}")
        return cls(
            [ipaddress.ip_network(n, strict=False) for n in table.get("networks", [])],
            [d.lower().strip(".") for d in table.get("domains", [])],
            [re.compile(p) for p in table.get("senders", [])],
            [re.compile(p) for p in table.get("recipients", [])],
            [re.compile(p) for p in table.get("helo", [])],
        )

    def ip(self, ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(addr in n for n in self.networks)

    def domain(self, address: str) -> bool:
        d = address.rpartition("@")[2].lower().rstrip(".")
        return bool(d) and any(d == x or d.endswith("." + x) for x in self.domains)


@dataclass
class Rules:
    allow: RuleSet = field(default_factory=RuleSet)
    deny: RuleSet = field(default_factory=RuleSet)


class RulesFile:
    """The rules, re-read when the file's mtime, size or inode changes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.rules = Rules()
        self.stamp: tuple[int, int, int] | None = None
        self.load()

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def load(self) -> None:
        stamp = self._stamp()
        if stamp is None:
            raise FileNotFoundError(f"rules file {self.path} does not exist")
        with open(self.path, "rb") as f:
            data = tomllib.load(f)
        unknown = set(data) - {"allow", "deny"}
        if unknown:
            raise ValueError(f"unknown sections {', '.join(sorted(unknown))}; use [allow] "
                             "and [deny]")
        self.rules = Rules(RuleSet.parse(data.get("allow", {}), "allow"),
                           RuleSet.parse(data.get("deny", {}), "deny"))
        self.stamp = stamp
        log.info("rules loaded from %s", self.path)

    def reload_if_changed(self) -> None:
        if self._stamp() != self.stamp:
            try:
                self.load()
            except (OSError, ValueError, TypeError, re.error) as e:
                log.error("rules file %s not reloaded, keeping the previous rules: %s",
                          self.path, e)
                self.stamp = self._stamp()


rules_file: RulesFile | None = None
_watcher: asyncio.Task[None] | None = None


async def watch(rf: RulesFile, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        rf.reload_if_changed()


@plugin.configure
async def configure(config: dict[str, Any]) -> None:
    global rules_file, _watcher
    rules_file = RulesFile(str(config.get("rules_file", "rules.toml")))
    if _watcher is not None:
        _watcher.cancel()
    _watcher = asyncio.create_task(watch(rules_file, float(config.get("reload_interval_s", 1))))


ALLOWED = Result.cont(allowdeny="allow")


def _rules(ctx: Context) -> Rules | None:
    """None when the session is already allowed."""
    if ctx.tags.get("allowdeny") == "allow":
        return None
    assert rules_file is not None, "configure was not called"
    return rules_file.rules


@plugin.hook("connect")
def connect(ctx: Context) -> Result | None:
    r = _rules(ctx)
    if r is None or r.allow.ip(ctx.peer_ip):
        return ALLOWED
    if r.deny.ip(ctx.peer_ip):
        return Result.reject("Access denied", 554, "5.7.1", reason=f"network of {ctx.peer_ip}")
    return None


@plugin.hook("helo")
def helo(ctx: Context) -> Result | None:
    r = _rules(ctx)
    name = ctx.helo or ""
    if r is None or any(p.search(name) for p in r.allow.helo):
        return ALLOWED
    if any(p.search(name) for p in r.deny.helo):
        return Result.reject("HELO name refused by policy", reason=f"helo {name}")
    return None


@plugin.hook("mail_from")
def mail_from(ctx: Context) -> Result | None:
    r = _rules(ctx)
    sender = ctx.mail_from or ""
    if r is None or r.allow.domain(sender) or any(p.search(sender) for p in r.allow.senders):
        return ALLOWED
    if r.deny.domain(sender) or any(p.search(sender) for p in r.deny.senders):
        return Result.reject("Sender refused by policy", reason=f"sender {sender}")
    return None


@plugin.hook("rcpt_to")
def rcpt_to(ctx: Context) -> Result | None:
    r = _rules(ctx)
    rcpt = ctx.recipient or ""
    if r is None or r.allow.domain(rcpt) or any(p.search(rcpt) for p in r.allow.recipients):
        return None
    if r.deny.domain(rcpt) or any(p.search(rcpt) for p in r.deny.recipients):
        return Result.reject("Recipient refused by policy", reason=f"recipient {rcpt}")
    return None


if __name__ == "__main__":
    plugin.serve()
