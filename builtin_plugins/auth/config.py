"""The ``[authentication]`` section, shared by the spf, dkim, dkim_sign, dmarc and arc plugins.

The seed's keys are accepted as written (``spf_enabled``, ``dkim_enabled``, ``dmarc_enabled``,
``dmarc_policy``). Detection is separate from policy: each check reports a result, and the
``*_actions`` tables map results to what happens (``tag`` only records it).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal

from elemta_core.config.errors import ConfigError
from elemta_core.config.schema import check_positive


class PolicyAction(str, enum.Enum):
    """What a check's result turns into (maddy's FailAction)."""

    TAG = "tag"  # record the result (tags, Authentication-Results) and go on
    QUARANTINE = "quarantine"
    TEMPFAIL = "tempfail"  # 4xx: try again later
    REJECT = "reject"  # 5xx


SPF_RESULTS = ("pass", "fail", "softfail", "neutral", "none", "temperror", "permerror")
DKIM_RESULTS = ("pass", "fail", "neutral", "none", "temperror", "permerror")
DMARC_CAPS = ("none", "quarantine", "reject")


@dataclass
class SigningKey:
    """One DKIM key: ``domain`` signs mail whose From is that domain (or a subdomain)."""

    domain: str
    selector: str
    key_file: str  # PEM (RSA PKCS#1/PKCS#8, Ed25519 PKCS#8) or dkimpy's base64 Ed25519 seed

    def validate(self) -> None:
        self.domain = self.domain.lower().rstrip(".")
        if not self.domain or "." not in self.domain:
            raise ConfigError("domain", f"{self.domain!r} is not a domain",
                              'write domain = "example.org"')
        if not self.selector or any(c in self.selector for c in " ;=\t"):
            raise ConfigError("selector", f"{self.selector!r} is not a selector",
                              'write selector = "s2026" (letters, digits, dots, hyphens)')
        if not self.key_file:
            raise ConfigError("key_file", "is empty",
                              "run `elemta dkim keygen` and give the key's path")


DEFAULT_SIGN_HEADERS = [
    "from", "sender", "reply-to", "subject", "date", "message-id", "to", "cc",
    "mime-version", "content-type", "content-transfer-encoding", "in-reply-to",
    "references", "list-id", "list-unsubscribe", "list-unsubscribe-post",
]
#: Signed once more than present, so none can be added without breaking the signature.
DEFAULT_OVERSIGN = ["from", "subject", "date", "to", "cc", "reply-to", "message-id"]


@dataclass
class AuthConfig:
    # -- the seed's keys ------------------------------------------------------------------
    spf_enabled: bool = True
    dkim_enabled: bool = True
    dmarc_enabled: bool = True
    #: Local cap on DMARC enforcement: none only reports, quarantine quarantines at most,
    #: reject honours a published p=reject.
    dmarc_policy: Literal["none", "quarantine", "reject"] = "none"
    # -- shared ---------------------------------------------------------------------------
    authserv_id: str = ""  # default: [server] hostname
    #: Authenticated or relay-network clients send outbound mail: SPF/DMARC do not judge it.
    skip_authenticated: bool = True
    #: Worker threads running pyspf/dkimpy off the event loop.
    workers: int = 4
    # -- SPF (RFC 7208) ---------------------------------------------------------------------
    spf_helo: bool = True
    spf_actions: dict[str, PolicyAction] = field(default_factory=dict)
    spf_received_header: bool = True
    spf_timeout: float = 20.0  # the whole evaluation (RFC 7208 §4.6.4)
    # -- DKIM verify (RFC 6376, RFC 8463) ---------------------------------------------------
    dkim_actions: dict[str, PolicyAction] = field(default_factory=dict)
    dkim_max_signatures: int = 10
    dkim_min_key_bits: int = 1024
    # -- DKIM sign ----------------------------------------------------------------------------
    dkim_keys: list[SigningKey] = field(default_factory=list)
    dkim_sign_headers: list[str] = field(default_factory=lambda: list(DEFAULT_SIGN_HEADERS))
    dkim_oversign_headers: list[str] = field(default_factory=lambda: list(DEFAULT_OVERSIGN))
    #: Header canonicalisation is relaxed: our header writer normalises whitespace.
    dkim_sign_canonicalization: Literal["relaxed/relaxed", "relaxed/simple"] = "relaxed/relaxed"
    dkim_sign_authenticated: bool = True
    dkim_sign_relayed: bool = True
    # -- ARC (RFC 8617) -----------------------------------------------------------------------
    arc_enabled: bool = True
    arc_seal_domain: str = ""
    arc_seal_selector: str = ""
    arc_seal_key: str = ""  # RSA PEM
    #: The most ARC sets a chain may have (RFC 8617 §4.2.1: 50).
    arc_max_instances: int = 50

    def validate(self) -> None:
        for name, actions, allowed in (("spf_actions", self.spf_actions, SPF_RESULTS),
                                       ("dkim_actions", self.dkim_actions, DKIM_RESULTS)):
            for k in actions:
                if k not in allowed:
                    raise ConfigError(f"{name}.{k}", "is not a result",
                                      f"use one of: {', '.join(allowed)}")
        check_positive("workers", self.workers)
        check_positive("spf_timeout", self.spf_timeout)
        check_positive("dkim_max_signatures", self.dkim_max_signatures)
        if self.dkim_min_key_bits < 512:
            raise ConfigError("dkim_min_key_bits", f"{self.dkim_min_key_bits} is too small",
                              "use 1024 (RFC 8301) or more")
        if not 1 <= self.arc_max_instances <= 50:
            raise ConfigError("arc_max_instances", f"{self.arc_max_instances} is out of range",
                              "use a value from 1 to 50 (RFC 8617)")
        self.dkim_sign_headers = [h.lower() for h in self.dkim_sign_headers]
        self.dkim_oversign_headers = [h.lower() for h in self.dkim_oversign_headers]
        if "from" not in self.dkim_sign_headers:
            raise ConfigError("dkim_sign_headers", "does not include from",
                              "add \"from\": RFC 6376 §5.4 requires signing it")
        seal = (self.arc_seal_domain, self.arc_seal_selector, self.arc_seal_key)
        if any(seal) and not all(seal):
            raise ConfigError("arc_seal_key" if not self.arc_seal_key else
                              "arc_seal_domain" if not self.arc_seal_domain else
                              "arc_seal_selector", "is missing",
                              "set arc_seal_domain, arc_seal_selector and arc_seal_key together")
        self.arc_seal_domain = self.arc_seal_domain.lower().rstrip(".")

    def spf_action(self, result: str) -> PolicyAction:
        return self.spf_actions.get(result, PolicyAction.TAG)

    def dkim_action(self, result: str) -> PolicyAction:
        return self.dkim_actions.get(result, PolicyAction.TAG)
