"""Counter key names: ``<prefix>:{<per>:<subject>}:<limit>``.

The braces are a Redis Cluster hash tag: every key of one subject (an address, a sender …)
lands in one slot, so the script that checks them together runs on one node. Subjects are
normalised (lower case; IPv6 to its counting prefix) and long ones hashed, so an attacker
cannot make keys of unbounded size.
"""

from __future__ import annotations

import hashlib
import ipaddress
from functools import lru_cache

MAX_SUBJECT = 200
CONNECTIONS = "conn"  # the lease set of concurrent connections
CONNECTION_RATE = "rate"  # GCRA of new connections


def hash_tag(key: str) -> str:
    """The part of ``key`` Redis Cluster hashes (between the first ``{`` and the next ``}``)."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start + 1:end]
    return key


def subject(per: str, value: str) -> str:
    """The hash-tagged subject part of a key; braces in values cannot end the tag early."""
    v = value.lower().replace("{", "%7b").replace("}", "%7d")
    if len(v) > MAX_SUBJECT:
        v = "sha1-" + hashlib.sha1(v.encode()).hexdigest()
    return "{" + per + ":" + v + "}"


def key(prefix: str, per: str, value: str, limit: str) -> str:
    return f"{prefix}:{subject(per, value)}:{limit}"


@lru_cache(maxsize=4096)
def client_address(ip: str, v6_prefix: int) -> str:
    """What a client is counted as: its IPv4 address, or its IPv6 prefix (``2001:db8::/64``)."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        if v6_prefix < 128:
            return str(ipaddress.IPv6Network((addr, v6_prefix), strict=False))
    return str(addr)


def domain_of(address: str) -> str:
    """The domain of ``local@domain`` (lower case, no trailing dot); ``""`` for none."""
    _, at, domain = address.rpartition("@")
    return domain.lower().rstrip(".") if at else ""
