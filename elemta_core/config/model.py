"""The core's own TOML sections. Plugin sections are described by the plugins themselves."""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field
from typing import Any, Literal

from elemta_core.config.errors import ConfigError
from elemta_core.config.schema import check_networks, check_positive, parse_hostport
from elemta_core.hooks.types import FailurePolicy

MIB = 1024 * 1024


class BareNewline(str, enum.Enum):
    """What DATA does with a CR or LF that is not part of CRLF (RFC 5321 2.3.8)."""

    NORMALIZE = "normalize"  # store it as CRLF; only CRLF.CRLF ever ends DATA
    REJECT = "reject"  # refuse the message with 554 5.6.0


@dataclass
class ServerConfig:
    listen: list[str] = field(default_factory=lambda: ["127.0.0.1:2525"])
    hostname: str = "localhost"
    state_dir: str = ".elemta"
    banner: str = "ESMTP Elemta"
    max_message_size: int = 25 * MIB
    max_recipients: int = 100
    max_line_length: int = 1000
    max_command_length: int = 512
    max_commands: int = 1000
    max_bad_commands: int = 10
    idle_timeout: float = 300.0
    max_connections: int = 1000
    relay_networks: list[str] = field(default_factory=list)
    starttls: bool = True
    tls_cert: str = ""
    tls_key: str = ""
    require_tls: bool = False
    users_file: str = ""
    shutdown_grace: float = 30.0
    workers: int = 0  # 0: one per core; each worker is a process on the same port (SO_REUSEPORT)
    # -- the hardened edge --
    max_connections_per_ip: int = 50  # 0: no cap (the rate_limiter plugin has finer ones)
    max_bad_recipients: int = 20  # rejected RCPTs per session before 421 and close
    auth_max_failures: int = 5  # per client IP within auth_failure_window, then 421
    auth_failure_window: float = 300.0
    greet_pause: float = 0.0  # seconds to wait before the greeting to catch early talkers
    bare_newline: BareNewline = field(default_factory=lambda: BareNewline.NORMALIZE)
    proxy_listen: list[str] = field(default_factory=list)  # listeners that expect HAProxy PROXY v1/v2
    proxy_trusted: list[str] = field(default_factory=lambda: ["127.0.0.0/8", "::1/128"])
    proxy_timeout: float = 5.0

    @property
    def effective_workers(self) -> int:
        return self.workers or os.cpu_count() or 1

    def validate(self) -> None:
        for i, addr in enumerate(self.proxy_listen):
            parse_hostport(f"proxy_listen[{i}]", addr)
        check_networks("proxy_trusted", self.proxy_trusted)
        for k in ("max_connections_per_ip", "max_bad_recipients", "auth_max_failures"):
            check_positive(k, getattr(self, k), allow_zero=True)
        check_positive("greet_pause", self.greet_pause, allow_zero=True)
        check_positive("proxy_timeout", self.proxy_timeout)
        if not self.listen and not self.proxy_listen:
            raise ConfigError("listen", "is empty", 'give at least one "host:port"')
        for i, addr in enumerate(self.listen):
            parse_hostport(f"listen[{i}]", addr)
        for k in ("max_message_size", "max_recipients", "max_commands", "max_bad_commands",
                  "max_connections"):
            check_positive(k, getattr(self, k))
        check_positive("workers", self.workers, allow_zero=True)
        check_positive("idle_timeout", self.idle_timeout)
        check_positive("shutdown_grace", self.shutdown_grace, allow_zero=True)
        if not 78 <= self.max_line_length <= 65536:
            raise ConfigError("max_line_length", f"{self.max_line_length} is out of range",
                              "use 1000 (RFC 5321) or a value between 78 and 65536")
        if not 64 <= self.max_command_length <= 4096:
            raise ConfigError("max_command_length", f"{self.max_command_length} is out of range",
                              "use 512 (RFC 5321) or a value between 64 and 4096")
        check_networks("relay_networks", self.relay_networks)
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("tls_cert" if not self.tls_cert else "tls_key", "is missing",
                              "set both tls_cert and tls_key, or neither for a generated one")
        if self.require_tls and not self.starttls:
            raise ConfigError("require_tls", "needs starttls = true", "enable starttls")


@dataclass
class DeliveryConfig:
    local_domains: list[str] = field(default_factory=lambda: ["localhost"])
    maildir_root: str = ""  # default: <state_dir>/mail
    concurrency: int = 8
    #: Smarthost for every non-local domain without a transport rule: "host:port".
    relayhost: str = ""
    relayhost_username: str = ""
    relayhost_password: str = ""
    #: Per-domain routes: "example.com" = "lmtp:unix:/run/lmtp" | "smtp:[127.0.0.1]:2526".
    transports: dict[str, str] = field(default_factory=dict)
    #: Port used when delivering to MX hosts (25; tests point it elsewhere).
    smtp_port: int = 25
    #: "opportunistic" (STARTTLS when offered), "require", or "none".
    tls: Literal["opportunistic", "require", "none"] = "opportunistic"
    tls_verify: bool = False
    helo_name: str = ""  # default: server.hostname
    connect_timeout: float = 30.0
    command_timeout: float = 300.0
    #: Deliver mail whose every recipient is local into Maildir before answering 250 (the
    #: Maildir copy is the durable copy) instead of spool -> queue -> Maildir. Mail with a
    #: remote recipient, a plugin on the queued/delivery_* hooks, or a failed copy is queued.
    direct_local: bool = True

    def validate(self) -> None:
        check_positive("concurrency", self.concurrency)
        self.local_domains = [d.lower().rstrip(".") for d in self.local_domains]
        from elemta_core.delivery.transports import validate_delivery

        validate_delivery(self)


class SyncMode(str, enum.Enum):
    FSYNC = "fsync"  # fsync every file of a batch, one directory fsync per batch
    SYNCFS = "syncfs"  # one syncfs(2) per batch: the cheapest durable group commit on Linux


@dataclass
class SpoolConfig:
    sync: SyncMode = SyncMode.FSYNC
    max_batch: int = 256

    def validate(self) -> None:
        check_positive("max_batch", self.max_batch)


@dataclass
class MetricsConfig:
    listen: str = "127.0.0.1:9725"  # "" disables the endpoint

    def validate(self) -> None:
        if self.listen:
            parse_hostport("listen", self.listen)


class LogFormat(str, enum.Enum):
    TEXT = "text"
    JSON = "json"


@dataclass
class LoggingConfig:
    level: str = "info"
    format: LogFormat = LogFormat.TEXT
    file: str = ""  # "" logs to stderr

    def validate(self) -> None:
        if self.level.lower() not in ("debug", "info", "warning", "error", "critical"):
            raise ConfigError("level", f"{self.level!r} is not a log level",
                              "use debug, info, warning, error or critical")


@dataclass
class AdminConfig:
    socket: str = ""  # default: <state_dir>/admin.sock


@dataclass
class PluginOptions:
    """Operator overrides of a plugin's own defaults."""

    priority: int | None = None
    timeout_ms: int | None = None
    failure_policy: FailurePolicy | None = None

    def validate(self) -> None:
        if self.timeout_ms is not None:
            check_positive("timeout_ms", self.timeout_ms)


@dataclass
class PluginsConfig:
    directory: str = "plugins"
    enabled: list[str] | None = None  # None: the default set that is installed
    include: list[str] = field(default_factory=list)
    options: dict[str, PluginOptions] = field(default_factory=dict)
    external: list[dict[str, Any]] = field(default_factory=list)
    hot_reload: bool = False
    mtls: bool = False  # AutoMTLS on every external plugin's socket (an entry may override)
