"""A loopback authoritative DNS server (dnslib) holding a small zone, for MX tests.

It answers as a real server does: NXDOMAIN only for names that do not exist, NODATA
(NOERROR, empty answer) for a name without the asked type, SERVFAIL where the test says so.
"""

from __future__ import annotations

from typing import Any, Self

from dnslib import AAAA, MX, QTYPE, RCODE, RR, A
from dnslib.server import BaseResolver, DNSServer

from tests.support.ports import free_port

_TYPES = {"A": (QTYPE.A, A), "AAAA": (QTYPE.AAAA, AAAA), "MX": (QTYPE.MX, None)}


class _ZoneResolver(BaseResolver):  # type: ignore[misc]
    def __init__(self, zone: dict[str, list[tuple[str, str]]], servfail: set[str]) -> None:
        self.zone = {k.lower().rstrip("."): v for k, v in zone.items()}
        self.servfail = {s.lower().rstrip(".") for s in servfail}

    def resolve(self, request: Any, handler: Any) -> Any:
        reply = request.reply()
        name = str(request.q.qname).lower().rstrip(".")
        qtype = QTYPE[request.q.qtype]
        if name in self.servfail:
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        if name not in self.zone:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        for rtype, value in self.zone[name]:
            if rtype != qtype:
                continue
            if rtype == "MX":
                pref, _, host = value.partition(" ")
                rdata: Any = MX(host if host.endswith(".") else host + ".", int(pref))
            else:
                rdata = _TYPES[rtype][1](value)
            reply.add_answer(RR(request.q.qname, _TYPES[rtype][0], rdata=rdata, ttl=60))
        return reply


class ZoneDNS:
    """``ZoneDNS({"example.test": [("MX", "10 mx.example.test")], ...}).start()``."""

    def __init__(self, zone: dict[str, list[tuple[str, str]]],
                 servfail: set[str] | None = None) -> None:
        self.port = free_port()
        self.resolver = _ZoneResolver(zone, servfail or set())
        self.server = DNSServer(self.resolver, port=self.port, address="127.0.0.1")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> ZoneDNS:
        self.server.start_thread()
        return self

    def stop(self) -> None:
        self.server.stop()
        self.server.server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
