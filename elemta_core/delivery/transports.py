"""Where a recipient's mail goes: local Maildir, a per-domain transport rule, the relayhost, or MX.

Transport specs follow Postfix's spelling, so operators can carry their habits over:

- ``smtp:[host]:port`` / ``smtp:[host]`` — that host, no MX lookup (brackets, as in Postfix)
- ``smtp:host:port`` / ``smtp:host`` — the MX hosts of ``host``
- ``lmtp:host:port`` / ``lmtp:[host]:port`` / ``lmtp:unix:/path/to/socket``
- ``local`` — the embedded Maildir delivery

Rules match a domain exactly, or every subdomain with a leading dot (``".example.com"``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

from elemta_core.config.errors import ConfigError
from elemta_core.config.schema import parse_hostport

if TYPE_CHECKING:
    from elemta_core.config.model import DeliveryConfig


class Kind(str, enum.Enum):
    LOCAL = "local"
    SMTP = "smtp"
    LMTP = "lmtp"


@dataclass(frozen=True, slots=True)
class Route:
    """One destination. ``mx`` routes name a domain whose MX hosts are looked up."""

    kind: Kind
    host: str = ""
    port: int = 0
    mx: bool = False
    unix_path: str = ""
    auth: tuple[str, str] | None = None

    @property
    def key(self) -> str:
        """Identity used for per-destination limits and connection caching."""
        if self.kind is Kind.LOCAL:
            return "local"
        if self.unix_path:
            return f"{self.kind.value}:unix:{self.unix_path}"
        host = self.host if self.mx else f"[{self.host}]"
        return f"{self.kind.value}:{host}:{self.port}"


LOCAL = Route(Kind.LOCAL)


def parse_transport(key: str, spec: str, default_smtp_port: int = 25) -> Route:
    """Parse one transport spec; a bad spec is a ConfigError that names ``key``."""
    spec = spec.strip()
    if spec in ("local", "maildir"):
        return LOCAL
    scheme, sep, rest = spec.partition(":")
    if not sep or scheme not in ("smtp", "lmtp") or not rest:
        raise ConfigError(key, f"{spec!r} is not a transport",
                          'write "smtp:[host]:port", "smtp:host", "lmtp:host:port", '
                          '"lmtp:unix:/path" or "local"')
    kind = Kind(scheme)
    if kind is Kind.LMTP and rest.startswith("unix:"):
        path = rest[5:]
        if not path.startswith("/"):
            raise ConfigError(key, f"{path!r} is not an absolute socket path",
                              'write "lmtp:unix:/run/dovecot/lmtp"')
        return Route(kind, unix_path=path)
    bracketed = rest.startswith("[")
    default_port = default_smtp_port if kind is Kind.SMTP else 24
    host, port = parse_hostport(key, rest, default_port)
    host = host.strip("[]").rstrip(".").lower()
    if not host or any(c.isspace() or c in "/@" for c in host):
        raise ConfigError(key, f"{spec!r} has no valid host", 'write "smtp:[192.0.2.1]:25"')
    # LMTP never looks up MX records: it names its server.
    return Route(kind, host, port, mx=(kind is Kind.SMTP and not bracketed))


def parse_relayhost(cfg: DeliveryConfig) -> Route | None:
    """``relayhost = "host:port"`` (or ``"[host]:port"``): one smarthost, no MX lookup."""
    if not cfg.relayhost:
        return None
    host, port = parse_hostport("relayhost", cfg.relayhost, 25)
    host = host.strip("[]").lower()
    if not host:
        raise ConfigError("relayhost", f"{cfg.relayhost!r} has no host", 'write "smtp.example.com:587"')
    auth = (cfg.relayhost_username, cfg.relayhost_password) if cfg.relayhost_username else None
    return Route(Kind.SMTP, host, port, mx=False, auth=auth)


def validate_delivery(cfg: DeliveryConfig) -> None:
    """Check relayhost and transport rules when the config is loaded, not at first use."""
    if not 0 < cfg.smtp_port < 65536:
        raise ConfigError("smtp_port", f"{cfg.smtp_port} is out of range", "use 25, or 1-65535")
    for k in ("connect_timeout", "command_timeout"):
        if getattr(cfg, k) <= 0:
            raise ConfigError(k, "must be > 0", f"set {k} to a number of seconds")
    if bool(cfg.relayhost_username) != bool(cfg.relayhost_password):
        raise ConfigError("relayhost_password" if cfg.relayhost_username else "relayhost_username",
                          "is missing", "set both relayhost_username and relayhost_password")
    parse_relayhost(cfg)
    for domain, spec in cfg.transports.items():
        if not domain.strip(".") or any(c.isspace() or c in "@/:" for c in domain):
            raise ConfigError(f"transports.{domain}", "is not a domain",
                              'use "example.com" or ".example.com" for its subdomains')
        parse_transport(f"transports.{domain}", spec, cfg.smtp_port)


class Router:
    """Maps a recipient address to its Route; built once per config."""

    def __init__(self, local_domains: frozenset[str], transports: dict[str, Route],
                 relayhost: Route | None, smtp_port: int = 25) -> None:
        self.local_domains = local_domains
        self.exact = {d.lower().rstrip("."): r for d, r in transports.items()
                      if not d.startswith(".")}
        self.suffixes = sorted(((d.lower().rstrip("."), r) for d, r in transports.items()
                                if d.startswith(".")), key=lambda dr: -len(dr[0]))
        self.relayhost = relayhost
        self.smtp_port = smtp_port

    @classmethod
    def from_config(cls, cfg: DeliveryConfig) -> Router:
        rules = {d: parse_transport(f"transports.{d}", s, cfg.smtp_port)
                 for d, s in cfg.transports.items()}
        return cls(frozenset(cfg.local_domains), rules, parse_relayhost(cfg), cfg.smtp_port)

    def route(self, address: str) -> Route:
        domain = address.rpartition("@")[2].lower().rstrip(".")
        rule = self.exact.get(domain)
        if rule is not None:
            return rule
        for suffix, r in self.suffixes:
            if domain.endswith(suffix):
                return r
        if domain in self.local_domains:
            return LOCAL
        if self.relayhost is not None:
            return self.relayhost
        return Route(Kind.SMTP, domain, self.smtp_port, mx=True)
