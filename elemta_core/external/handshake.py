"""The go-plugin handshake line: ``CORE-VERSION|APP-VERSION|NETWORK|ADDRESS|PROTOCOL|[CERT]``
(CERT: the plugin's certificate under AutoMTLS, see :mod:`mtls`).

A plugin prints exactly this on stdout once it listens, e.g. ``1|1|unix|/tmp/x/plugin1|grpc|``.
Every way it can be wrong has its own message, because this is where a plugin author's
first mistakes show.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from dataclasses import dataclass

from elemta_core.external.constants import APP_PROTOCOL_VERSION, CORE_PROTOCOL_VERSION
from elemta_core.external.errors import HandshakeError

MAX_LINE = 4096


@dataclass(frozen=True, slots=True)
class Handshake:
    core_version: int
    app_version: int
    network: str  # unix | tcp
    address: str
    protocol: str
    server_cert: str = ""

    @property
    def target(self) -> str:
        """The gRPC target for this address."""
        return f"unix:{self.address}" if self.network == "unix" else self.address


def _version(field: str, what: str, ours: int, line: str) -> int:
    try:
        v = int(field)
    except ValueError:
        raise HandshakeError(f"{what} {field!r} in the handshake line is not a number: "
                             f"{line!r}") from None
    if v != ours:
        raise HandshakeError(f"{what} mismatch: the plugin speaks version {v}, this server "
                             f"speaks version {ours}")
    return v


def parse(raw: bytes, mtls: bool = False) -> Handshake:
    """Parse one line of the child's stdout (without checking the socket); with ``mtls`` the
    sixth field (the plugin's certificate) is required, without it refused."""
    try:
        line = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise HandshakeError(f"stdout is not a handshake line (not UTF-8): {raw[:80]!r}; a "
                             "plugin must print only the handshake line on stdout") from None
    parts = line.split("|")
    if len(parts) not in (5, 6) or not line:
        raise HandshakeError(f"stdout is not a handshake line: {line[:200]!r}; expected "
                             "CORE-VERSION|APP-VERSION|unix|/path/to.sock|grpc| (log to stderr, "
                             "not stdout)")
    core = _version(parts[0], "go-plugin core protocol", CORE_PROTOCOL_VERSION, line)
    app = _version(parts[1], "hook protocol", APP_PROTOCOL_VERSION, line)
    network, address, protocol = parts[2], parts[3], parts[4]
    cert = parts[5] if len(parts) == 6 else ""
    if protocol != "grpc":
        raise HandshakeError(f"protocol {protocol!r} is not supported; serve grpc "
                             "(go-plugin: GRPCServer: plugin.DefaultGRPCServer)")
    if network == "unix":
        if not address.startswith("/"):
            raise HandshakeError(f"unix socket address {address!r} is not an absolute path")
    elif network == "tcp":
        host, _, port = address.rpartition(":")
        try:
            loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
        except ValueError:
            loopback = False
        if not loopback or not port.isdigit():
            raise HandshakeError(f"tcp address {address!r} is not a loopback host:port")
    else:
        raise HandshakeError(f"network {network!r} is not supported; use unix")
    if cert and not mtls:
        raise HandshakeError("the plugin offers a TLS certificate (AutoMTLS), which this "
                             "server is not configured for; serve without TLS on the socket "
                             "or set mtls = true")
    if mtls and not cert:
        raise HandshakeError("mtls is on but the plugin answered without a certificate (the "
                             "handshake's sixth field): its SDK does not do AutoMTLS; update "
                             "it or set mtls = false for this plugin")
    return Handshake(core, app, network, address, protocol, cert)


def check_socket(hs: Handshake) -> None:
    """The address must be a unix socket that exists (a plugin may lie or be too early)."""
    if hs.network != "unix":
        return
    try:
        st = os.stat(hs.address)
    except FileNotFoundError:
        raise HandshakeError(f"the socket {hs.address} named in the handshake does not "
                             "exist") from None
    except OSError as e:
        raise HandshakeError(f"cannot stat the socket {hs.address}: {e.strerror}") from None
    if not stat.S_ISSOCK(st.st_mode):
        raise HandshakeError(f"{hs.address} named in the handshake is not a socket")
