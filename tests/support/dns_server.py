"""An authoritative DNS server on a loopback port, serving records the tests write (dnslib).

It answers as a real server does where the checks care (PITFALLS.md): NXDOMAIN only for
names that do not exist (empty non-terminals exist), NODATA (NOERROR, no answer) for a
name without the asked type, CNAMEs followed within the zone, UDP answers over 512 bytes
truncated so clients retry over TCP, SERVFAIL on demand, and timeouts as silence.
Records can be changed while it runs; every question is counted.
"""

from __future__ import annotations

import socket
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any, Self

from dnslib import AAAA, CNAME, MX, PTR, QTYPE, RCODE, RR, TXT, A, DNSRecord
from dnslib.server import DNSError, DNSHandler, DNSLogger, DNSServer

_RDATA = {"A": A, "AAAA": AAAA, "MX": MX, "TXT": TXT, "PTR": PTR, "CNAME": CNAME}


def _norm(name: str) -> str:
    return name.lower().rstrip(".")


class _Silence(DNSError):
    """Raised to send no answer at all (a timeout, seen from the client)."""


class _Handler(DNSHandler):
    """Truncates UDP answers over 512 bytes (no EDNS), keeping the question section, as
    real servers do (dnslib's own truncate() drops it, which resolvers reject)."""

    def get_reply(self, data: bytes) -> bytes:
        request = DNSRecord.parse(data)
        reply = self.server.resolver.resolve(request, self)  # type: ignore[attr-defined]
        rdata: bytes = reply.pack()
        if self.protocol == "udp" and len(rdata) > 512:
            short = request.reply()
            short.header.rcode = reply.header.rcode
            short.header.tc = 1
            rdata = short.pack()
        return rdata


class _Quiet(DNSLogger):
    def __init__(self) -> None:
        super().__init__("-request,-reply,-truncated,-error,-recv,-send,-data")


class ZoneServer:
    """``with ZoneServer() as dns: dns.txt("example.org", "v=spf1 -all")``."""

    def __init__(self, ttl: int = 300) -> None:
        self.ttl = ttl
        self.records: dict[str, list[tuple[str, Any]]] = {}
        self.servfail: set[str] = set()
        self.silent: set[str] = set()
        self.queries: Counter[tuple[str, str]] = Counter()
        self.tcp_queries = 0
        self._lock = threading.Lock()
        self._servers: list[DNSServer] = []
        self.port = 0

    # -- writing the zone -------------------------------------------------------------------

    def add(self, name: str, rtype: str, value: Any) -> ZoneServer:
        with self._lock:
            self.records.setdefault(_norm(name), []).append((rtype.upper(), value))
        return self

    def txt(self, name: str, *strings: str | bytes) -> ZoneServer:
        """One TXT record; a string over 255 bytes is split as a zone file would split it."""
        return self.add(name, "TXT", [s.encode() if isinstance(s, str) else s for s in strings])

    def a(self, name: str, *addresses: str) -> ZoneServer:
        for addr in addresses:
            self.add(name, "AAAA" if ":" in addr else "A", addr)
        return self

    def mx(self, name: str, exchange: str, preference: int = 10) -> ZoneServer:
        return self.add(name, "MX", (preference, exchange))

    def cname(self, name: str, target: str) -> ZoneServer:
        return self.add(name, "CNAME", target)

    def ptr(self, ip: str, target: str) -> ZoneServer:
        import ipaddress

        return self.add(ipaddress.ip_address(ip).reverse_pointer, "PTR", target)

    def remove(self, name: str) -> None:
        with self._lock:
            self.records.pop(_norm(name), None)

    def clear(self) -> None:
        with self._lock:
            self.records.clear()
            self.servfail.clear()
            self.silent.clear()
            self.queries.clear()

    # -- answering --------------------------------------------------------------------------

    def _exists(self, name: str) -> bool:
        return name in self.records or any(k.endswith("." + name) for k in self.records)

    def _rr(self, name: str, rtype: str, value: Any) -> RR:
        if rtype == "TXT":
            chunks = [c[i:i + 255] for c in value for i in range(0, max(len(c), 1), 255)]
            rdata: Any = TXT(chunks)
        elif rtype == "MX":
            rdata = MX(value[1], value[0])
        else:
            rdata = _RDATA[rtype](value)
        return RR(name, getattr(QTYPE, rtype), rdata=rdata, ttl=self.ttl)

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        qname = str(request.q.qname)
        name = _norm(qname)
        qtype = QTYPE[request.q.qtype]
        with self._lock:
            self.queries[(name, qtype)] += 1
            if handler.protocol == "tcp":
                self.tcp_queries += 1
            if name in self.silent:
                raise _Silence("silent")
            reply = request.reply()
            reply.header.aa = 1
            if name in self.servfail:
                reply.header.rcode = RCODE.SERVFAIL
                return reply
            seen: set[str] = set()
            while True:
                recs = self.records.get(name, [])
                cname = [v for t, v in recs if t == "CNAME"]
                if cname and qtype != "CNAME" and name not in seen:
                    seen.add(name)
                    reply.add_answer(self._rr(name, "CNAME", cname[0]))
                    name = _norm(cname[0])
                    continue
                for t, v in recs:
                    if t == qtype:
                        reply.add_answer(self._rr(name, t, v))
                if not recs and not seen and not self._exists(name):
                    reply.header.rcode = RCODE.NXDOMAIN
                return reply

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Self:
        for _ in range(20):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            try:
                udp = DNSServer(self, "127.0.0.1", port, False, _Quiet(), _Handler)
                tcp = DNSServer(self, "127.0.0.1", port, True, _Quiet(), _Handler)
            except OSError:
                continue
            self._servers = [udp, tcp]
            self.port = port
            for srv in self._servers:
                srv.server.daemon_threads = True  # type: ignore[attr-defined]
                # A short poll interval: shutdown() waits for one poll.
                threading.Thread(target=srv.server.serve_forever, kwargs={"poll_interval": 0.02},
                                 daemon=True, name=f"dns-{port}").start()
            return self
        raise RuntimeError("no free loopback port for the DNS server")

    def stop(self) -> None:
        for srv in self._servers:
            srv.server.shutdown()
            srv.server.server_close()
        self._servers = []

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __iter__(self) -> Iterator[str]:
        return iter(self.records)
