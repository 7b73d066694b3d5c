"""The compiled policy: which client is allowed, denied or limited how, and what each hook
charges.

Built once per config. Classifying a client (allow/deny lists, the most specific override)
is cached per address, so a check costs dictionary lookups, not network arithmetic.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from builtin_plugins.ratelimit import keys
from builtin_plugins.ratelimit.backend import LeaseRequest
from builtin_plugins.ratelimit.config import Count, Network, Per, RateLimitConfig, Rule
from builtin_plugins.ratelimit.gcra import Charge
from elemta_core.hooks.context import HookContext

CACHE_SIZE = 8192


class Standing(enum.Enum):
    LIMITED = "limited"
    ALLOWED = "allowed"  # on the allow list: never limited
    DENIED = "denied"  # on the deny list: always refused


@dataclass(frozen=True, slots=True)
class Client:
    """One client address as the policy sees it."""

    address: str  # what it is counted as (IPv6: its prefix)
    standing: Standing
    max_connections: int  # 0: no limit
    connection_rate: int  # per minute; 0: no limit
    limits: tuple[int, ...]  # per rule, in config order; 0: no limit
    #: The connect check, built once per client rather than once per connection.
    rate_charge: Charge | None = None
    lease_key: str = ""


def _parse(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _nets(values: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(v, strict=False) for v in values)


class Policy:
    def __init__(self, cfg: RateLimitConfig) -> None:
        self.cfg = cfg
        self.prefix = cfg.key_prefix
        self.rules: tuple[Rule, ...] = tuple(cfg.rules)
        self.allow = _nets(cfg.allow)
        self.deny = _nets(cfg.deny)
        # Most specific first: the first matching override wins.
        self.overrides = sorted(((ov.net, ov) for ov in cfg.overrides),
                                key=lambda p: p[0].prefixlen, reverse=True)
        self.lease_ttl_ms = int(cfg.lease_ttl * 1000)
        self._cache: dict[str, Client] = {}
        self.mail_rules = [i for i, r in enumerate(self.rules)
                           if r.count is Count.MESSAGES and r.per is not Per.RECIPIENT_DOMAIN]
        self.rcpt_rules = [i for i, r in enumerate(self.rules)
                           if r.count is Count.RECIPIENTS
                           or (r.count is Count.MESSAGES and r.per is Per.RECIPIENT_DOMAIN)]
        self.byte_rules = [i for i, r in enumerate(self.rules) if r.count is Count.BYTES]

    # -- clients -----------------------------------------------------------------------------

    def client(self, ip: str) -> Client:
        c = self._cache.get(ip)
        if c is None:
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            c = self._classify(ip)
            if c.standing is Standing.LIMITED:
                c = dataclasses.replace(
                    c, lease_key=self.lease_key(c.address),
                    rate_charge=Charge.per_period(
                        keys.key(self.prefix, "ip", c.address, keys.CONNECTION_RATE),
                        "connection_rate", c.connection_rate, 60.0)
                    if c.connection_rate else None)
            self._cache[ip] = c
        return c

    def _classify(self, ip: str) -> Client:
        cfg = self.cfg
        address = keys.client_address(ip, cfg.ipv6_prefix_length)
        addr = _parse(ip)
        limits = tuple(r.limit for r in self.rules)
        if addr is None:  # not an IP (a unix socket peer): count it as given
            return Client(address, Standing.LIMITED, cfg.max_connections_per_ip,
                          cfg.connection_rate_per_minute, limits)
        if any(addr in n for n in self.deny):
            return Client(address, Standing.DENIED, 0, 0, limits)
        if any(addr in n for n in self.allow):
            return Client(address, Standing.ALLOWED, 0, 0, limits)
        max_conn, rate = cfg.max_connections_per_ip, cfg.connection_rate_per_minute
        for net, ov in self.overrides:
            if addr in net:
                if ov.max_connections_per_ip is not None:
                    max_conn = ov.max_connections_per_ip
                if ov.connection_rate_per_minute is not None:
                    rate = ov.connection_rate_per_minute
                limits = tuple(ov.limits.get(r.name, r.limit) for r in self.rules)
                break
        return Client(address, Standing.LIMITED, max_conn, rate, limits)

    # -- what each hook charges --------------------------------------------------------------

    def connect(self, client: Client, member: str) -> tuple[list[Charge], LeaseRequest | None]:
        charges = [client.rate_charge] if client.rate_charge is not None else []
        lease = None
        if client.max_connections:
            lease = LeaseRequest(client.lease_key, member, client.max_connections,
                                 self.lease_ttl_ms)
        return charges, lease

    def lease_key(self, address: str) -> str:
        return keys.key(self.prefix, "ip", address, keys.CONNECTIONS)

    def _charge(self, i: int, client: Client, value: str, cost: int = 1) -> Charge | None:
        limit = client.limits[i]
        if not limit:
            return None
        r = self.rules[i]
        return Charge.per_period(keys.key(self.prefix, r.per.value, value, r.name), r.name,
                                 limit, r.seconds, r.burst, cost)

    def _subject(self, rule: Rule, ctx: HookContext, client: Client) -> str | None:
        per = rule.per
        if per is Per.IP:
            return client.address
        if per is Per.SENDER:
            return (ctx.mail_from or "").lower() or "<>"
        if per is Per.SENDER_DOMAIN:
            return keys.domain_of(ctx.mail_from or "") or "<>"
        if per is Per.AUTH_USER:
            return ctx.auth_user or None
        return None  # recipient domains are charged per recipient

    def mail_from(self, ctx: HookContext, client: Client) -> list[Charge]:
        out = []
        for i in self.mail_rules:
            value = self._subject(self.rules[i], ctx, client)
            if value is not None and (c := self._charge(i, client, value)) is not None:
                out.append(c)
        return out

    def rcpt_to(self, ctx: HookContext, client: Client, recipient: str) -> list[Charge]:
        out = []
        domain = keys.domain_of(recipient)
        for i in self.rcpt_rules:
            r = self.rules[i]
            if r.per is Per.RECIPIENT_DOMAIN:
                if r.count is Count.MESSAGES and any(
                        keys.domain_of(a) == domain for a in ctx.recipients):
                    continue  # this transaction already counted one message for the domain
                value: str | None = domain
            else:
                value = self._subject(r, ctx, client)
            if value is not None and (c := self._charge(i, client, value)) is not None:
                out.append(c)
        return out

    def message(self, ctx: HookContext, client: Client, size: int) -> list[Charge]:
        out = []
        for i in self.byte_rules:
            r = self.rules[i]
            if r.per is Per.RECIPIENT_DOMAIN:
                values: list[str | None] = list(dict.fromkeys(
                    keys.domain_of(a) for a in ctx.recipients))
            else:
                values = [self._subject(r, ctx, client)]
            for value in values:
                if value is not None and (c := self._charge(i, client, value, size)) is not None:
                    out.append(c)
        return out

    # -- what show and reset look at ---------------------------------------------------------

    def keys_for(self, per: Per, value: str) -> list[tuple[str, str, int, float]]:
        """``(key, limit name, limit, period)`` of every counter kept for a subject."""
        out: list[tuple[str, str, int, float]] = []
        if per is Per.IP:
            client = self.client(value)
            address = client.address
            out.append((self.lease_key(address), "connections", client.max_connections, 0.0))
            out.append((keys.key(self.prefix, "ip", address, keys.CONNECTION_RATE),
                        "connection_rate", client.connection_rate, 60.0))
            value = address
            limits = client.limits
        else:
            value = value.lower()
            limits = tuple(r.limit for r in self.rules)
        for i, r in enumerate(self.rules):
            if r.per is per:
                out.append((keys.key(self.prefix, per.value, value, r.name), r.name, limits[i],
                            r.seconds))
        return out
