"""The ``[rate_limiter]`` section: the seed's connection limits plus rules, overrides and backends.

Example::

    [rate_limiter]
    max_connections_per_ip = 10        # concurrent sessions per client address (0: no limit)
    connection_rate_per_minute = 60    # new sessions per client address per minute (0: no limit)
    allow = ["127.0.0.0/8", "::1/128"] # never limited
    deny = ["192.0.2.0/24"]            # always refused
    backend = "redis"                  # "memory" (default) or "redis" (Redis or Valkey)
    redis_url = "redis://127.0.0.1:6379/0"
    redis_cluster = false              # true for a Redis Cluster (any node's URL)
    on_backend_error = "allow"         # or "tempfail"

    [[rate_limiter.rules]]
    name = "sender-messages"
    per = "sender"                     # ip | sender | sender_domain | auth_user | recipient_domain
    count = "messages"                 # messages | recipients | bytes
    limit = 100
    period = "1h"

    [[rate_limiter.overrides]]
    network = "10.0.0.0/8"
    max_connections_per_ip = 100
    limits = { "sender-messages" = 1000 }
"""

from __future__ import annotations

import enum
import ipaddress
import math
import re
from dataclasses import dataclass, field

from elemta_core.config.errors import ConfigError
from elemta_core.config.schema import check_networks, check_positive

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
MAX_PERIOD = 366 * 86400.0
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


def parse_duration(key: str, value: float | str) -> float:
    """Seconds from a number or a string like ``"90s"``, ``"5m"``, ``"1h"``, ``"1d"``."""
    if isinstance(value, str):
        m = _DURATION.match(value)
        if not m:
            raise ConfigError(key, f"{value!r} is not a duration",
                              'write a number of seconds or a string like "30s", "5m", "1h", "1d"')
        seconds = float(m.group(1)) * _UNITS[m.group(2) or "s"]
    else:
        seconds = float(value)
    if not 0 < seconds <= MAX_PERIOD:
        raise ConfigError(key, f"{value!r} is out of range",
                          "give a positive duration of at most a year (366d)")
    return seconds


def check_seconds(key: str, value: float, low: float, high: float) -> None:
    """A finite number of seconds in ``[low, high]`` (TOML can spell nan and inf)."""
    if not (math.isfinite(value) and low <= value <= high):
        raise ConfigError(key, f"{value!r} is out of range",
                          f"use a number of seconds from {low:g} to {high:g}")


class Backend(str, enum.Enum):
    MEMORY = "memory"  # this process only: several workers or nodes each count alone
    REDIS = "redis"  # shared by every node pointing at the same Redis or Valkey


class OnBackendError(str, enum.Enum):
    ALLOW = "allow"  # fail open: log, count, let the session go on
    TEMPFAIL = "tempfail"  # fail closed: 421/451, the client retries later


class Per(str, enum.Enum):
    """Whose traffic a rule counts."""

    IP = "ip"
    SENDER = "sender"
    SENDER_DOMAIN = "sender_domain"
    AUTH_USER = "auth_user"
    RECIPIENT_DOMAIN = "recipient_domain"


class Count(str, enum.Enum):
    """What a rule counts, and so at which hook it is charged."""

    MESSAGES = "messages"  # one per transaction (MAIL FROM; per domain at its first RCPT)
    RECIPIENTS = "recipients"  # one per RCPT TO
    BYTES = "bytes"  # the message size, at end of DATA


@dataclass
class Rule:
    name: str
    per: Per
    count: Count
    limit: int
    period: float | str = 3600.0
    burst: int = 0  # 0: the limit itself (a full period's worth may come at once)

    def validate(self) -> None:
        if not _NAME.match(self.name):
            raise ConfigError("name", f"{self.name!r} is not a valid rule name",
                              "use lower-case letters, digits, '-', '_' or '.' (max 63)")
        check_positive("limit", self.limit)
        check_positive("burst", self.burst, allow_zero=True)
        self.period = parse_duration("period", self.period)

    @property
    def seconds(self) -> float:
        assert isinstance(self.period, float)
        return self.period


@dataclass
class Override:
    """Different limits for clients in ``network`` (the most specific network wins)."""

    network: str
    max_connections_per_ip: int | None = None
    connection_rate_per_minute: int | None = None
    limits: dict[str, int] = field(default_factory=dict)

    def validate(self) -> None:
        check_networks("network", [self.network])
        for k in ("max_connections_per_ip", "connection_rate_per_minute"):
            v = getattr(self, k)
            if v is not None:
                check_positive(k, v, allow_zero=True)
        for name, v in self.limits.items():
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ConfigError(f"limits.{name}", f"expected a count >= 0, got {v!r}",
                                  "write the rule's limit for this network as an integer")

    @property
    def net(self) -> Network:
        return ipaddress.ip_network(self.network, strict=False)


@dataclass
class RateLimitConfig:
    enabled: bool = True
    max_connections_per_ip: int = 10
    connection_rate_per_minute: int = 60
    #: IPv6 clients are counted per prefix of this length: one host may own a whole /64.
    ipv6_prefix_length: int = 64
    #: Never limited; by default the local host (its own tools and health checks).
    allow: list[str] = field(default_factory=lambda: ["127.0.0.0/8", "::1/128"])
    deny: list[str] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    overrides: list[Override] = field(default_factory=list)

    backend: Backend = Backend.MEMORY
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: A Redis Cluster: ``redis_url`` names any one node; keys of one subject share a slot.
    redis_cluster: bool = False
    redis_username: str = ""
    redis_password: str = ""
    redis_tls: bool = False  # also implied by a rediss:// URL
    redis_tls_ca: str = ""
    redis_tls_cert: str = ""
    redis_tls_key: str = ""
    redis_tls_verify: bool = True
    key_prefix: str = "elemta:rl"
    #: Longest wait for the backend per check; past it ``on_backend_error`` applies.
    timeout_ms: int = 250
    on_backend_error: OnBackendError = OnBackendError.ALLOW
    #: After a backend failure, checks skip the backend this long (no session waits on a
    #: dead server), then try it again: recovery needs no operator.
    retry_interval: float = 1.0
    #: A connection's slot expires this long after its node last refreshed it (a SIGKILLed
    #: node's connections stop counting after at most this). Refreshed every third of it.
    lease_ttl: float = 60.0

    def validate(self) -> None:
        check_positive("max_connections_per_ip", self.max_connections_per_ip, allow_zero=True)
        check_positive("connection_rate_per_minute", self.connection_rate_per_minute,
                       allow_zero=True)
        if not 32 <= self.ipv6_prefix_length <= 128:
            raise ConfigError("ipv6_prefix_length", f"{self.ipv6_prefix_length} is out of range",
                              "use 64 (one site) or a value between 32 and 128")
        check_networks("allow", self.allow)
        check_networks("deny", self.deny)
        seen: set[str] = set()
        for i, rule in enumerate(self.rules):
            if rule.name in seen:
                raise ConfigError(f"rules[{i}].name", f"{rule.name!r} is used twice",
                                  "give every rule its own name")
            seen.add(rule.name)
        for i, ov in enumerate(self.overrides):
            for name in ov.limits:
                if name not in seen:
                    raise ConfigError(f"overrides[{i}].limits.{name}", "names no rule",
                                      f"use one of: {', '.join(sorted(seen)) or '(no rules)'}")
        if self.backend is Backend.REDIS and not self.redis_url.startswith(
                ("redis://", "rediss://", "unix://")):
            raise ConfigError("redis_url", f"{self.redis_url!r} is not a Redis URL",
                              'write "redis://host:port/db", "rediss://…" for TLS or '
                              '"unix:///path/to.sock"')
        if self.redis_cluster and self.redis_url.startswith("unix://"):
            raise ConfigError("redis_cluster", "a cluster is reached over TCP, not a unix socket",
                              'give one node as "redis://host:port"')
        if bool(self.redis_tls_cert) != bool(self.redis_tls_key):
            raise ConfigError("redis_tls_cert" if not self.redis_tls_cert else "redis_tls_key",
                              "is missing", "set both redis_tls_cert and redis_tls_key, or neither")
        if not 1 <= self.timeout_ms <= 60_000:
            raise ConfigError("timeout_ms", f"{self.timeout_ms} is out of range",
                              "use 1 to 60000 milliseconds (a check waits this long at most)")
        check_seconds("retry_interval", self.retry_interval, 0.0, 3600.0)
        check_seconds("lease_ttl", self.lease_ttl, 0.1, 86400.0)
        if not re.match(r"^[A-Za-z0-9:_.-]{1,64}$", self.key_prefix):
            raise ConfigError("key_prefix", f"{self.key_prefix!r} is not a usable key prefix",
                              "use letters, digits, ':', '_', '.' or '-' (max 64)")

    @property
    def tls(self) -> bool:
        return self.redis_tls or self.redis_url.startswith("rediss://")
