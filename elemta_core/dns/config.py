"""The ``[dns]`` section: which nameservers to ask, how long to wait, whether to cache."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from elemta_core.config.errors import ConfigError
from elemta_core.config.schema import check_positive, parse_hostport

DEFAULT_PORT = 53


@dataclass
class DnsConfig:
    """``nameservers`` empty means the system's (``/etc/resolv.conf``).

    ``timeout`` bounds one try at one server, ``lifetime`` the whole lookup (every server,
    every retry): a lookup that takes longer is a temporary error, never a hang.
    """

    nameservers: list[str] = field(default_factory=list)  # "IP" or "IP:port" / "[v6]:port"
    timeout: float = 2.0
    lifetime: float = 5.0
    cache: bool = True
    cache_size: int = 10000

    def validate(self) -> None:
        for i, ns in enumerate(self.nameservers):
            host, _ = parse_hostport(f"nameservers[{i}]", ns, DEFAULT_PORT)
            try:
                ipaddress.ip_address(host)
            except ValueError:
                raise ConfigError(f"nameservers[{i}]", f"{host!r} is not an IP address",
                                  'give the server by address, e.g. "127.0.0.1:5353"') from None
        check_positive("timeout", self.timeout)
        check_positive("lifetime", self.lifetime)
        check_positive("cache_size", self.cache_size)
        if self.timeout > self.lifetime:
            raise ConfigError("timeout", f"{self.timeout} is longer than lifetime {self.lifetime}",
                              "make timeout (one try) at most lifetime (the whole lookup)")

    def servers(self) -> list[tuple[str, int]]:
        return [parse_hostport("nameservers", ns, DEFAULT_PORT) for ns in self.nameservers]
