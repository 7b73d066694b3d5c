"""What a lookup found, as a value: callers branch on a status, never on exceptions.

SPF, DKIM and DMARC each distinguish "no such name", "name without that record" and
"could not tell right now" (RFC 7208 §5, RFC 6376 §6.1.2, RFC 7489 §6.6.3), so the
resolver reports exactly those, plus names that cannot be asked at all.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class DnsStatus(enum.Enum):
    OK = "ok"
    NXDOMAIN = "nxdomain"  # the name does not exist
    NODATA = "nodata"  # the name exists, without records of that type
    TEMPFAIL = "tempfail"  # SERVFAIL, REFUSED, timeout, no usable server: try again later
    INVALID = "invalid"  # the name is not a valid DNS name (empty or oversized labels)


class DnsTemporaryError(Exception):
    """Raised by the synchronous adapters, which must interrupt a library's own logic."""


@dataclass(frozen=True, slots=True)
class DnsAnswer:
    """``records`` by type: TXT → ``bytes`` (strings joined), A/AAAA → ``str``,
    MX → ``(preference, exchange)``, PTR/CNAME → ``str`` (no trailing dot)."""

    status: DnsStatus
    records: tuple[Any, ...] = ()
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is DnsStatus.OK

    @property
    def void(self) -> bool:
        """No records, and no doubt about it (RFC 7208 §4.6.4 "void lookup")."""
        return self.status in (DnsStatus.NXDOMAIN, DnsStatus.NODATA)

    @property
    def temporary(self) -> bool:
        return self.status is DnsStatus.TEMPFAIL
