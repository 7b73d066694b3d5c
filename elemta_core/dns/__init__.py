"""DNS for every part of Elemta: one async resolver, and blocking facades for threads."""

# The config package imports dns.config (the [dns] section); loading it first keeps that
# cycle in one order whichever package a caller imports first.
import elemta_core.config  # noqa: F401
from elemta_core.dns.answer import DnsAnswer, DnsStatus, DnsTemporaryError
from elemta_core.dns.config import DnsConfig
from elemta_core.dns.resolver import Resolver
from elemta_core.dns.sync import (
    CachedLookups,
    NotCached,
    Queries,
    SyncResolver,
    dkim_txt_lookup,
    spf_lookup,
)

__all__ = [
    "CachedLookups",
    "DnsAnswer",
    "DnsConfig",
    "DnsStatus",
    "DnsTemporaryError",
    "NotCached",
    "Queries",
    "Resolver",
    "SyncResolver",
    "dkim_txt_lookup",
    "spf_lookup",
]
