"""DKIM signing of outgoing mail: per-domain selectors and keys, RSA and Ed25519, dual
signing (several keys for one domain), and header oversigning.

Which mail is outgoing: from an authenticated client or a relay network (configurable),
with a From domain (or a parent of it) that has keys. The signature covers the message as
it will be queued, with the header changes earlier plugins made.
"""

from __future__ import annotations

import email.utils
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import dkim

from builtin_plugins.auth.base import AuthPlugin
from builtin_plugins.auth.config import AuthConfig
from builtin_plugins.auth.dkim_verify import DKIMPY_LOG
from builtin_plugins.auth.keys import (
    DkimKey,
    DkimKeyError,
    KeyType,
    generate,
    load_key,
    write_private,
    zone_line,
)
from elemta_core.hooks.context import HookContext
from elemta_core.hooks.types import CONTINUE, FailurePolicy, HeaderChange, HeaderOp, HookResult
from elemta_core.message.message import Message
from elemta_core.plugins.api import PluginServices


@dataclass(frozen=True, slots=True)
class Signer:
    domain: str
    selector: str
    key: DkimKey


def header_list(message: Message, sign: list[str], oversign: list[str]) -> list[bytes]:
    """``h=``: each listed header once per occurrence, oversigned ones once more."""
    present = Counter(f.name.lower() for f in message.fields)
    out: list[bytes] = []
    for name in dict.fromkeys(sign):
        n = present.get(name, 0) + (1 if name in oversign else 0)
        out += [name.encode()] * n
    return out


def from_domain(message: Message) -> str:
    values = message.get_all("From")
    if len(values) != 1:
        return ""
    addrs = email.utils.getaddresses(values)
    if len(addrs) != 1:
        return ""
    return addrs[0][1].rpartition("@")[2].lower().rstrip(".")


def sign_message(message: Message, signers: list[Signer], headers: list[bytes],
                 canonicalization: str) -> list[str]:
    """DKIM-Signature header values, one per signer. Blocking: call in a thread."""
    head, _, body = canonicalization.encode().partition(b"/")
    out: list[str] = []
    for s in signers:
        d = dkim.DKIM(message.raw, logger=DKIMPY_LOG, signature_algorithm=s.key.type.algorithm,
                      linesep=b"\r\n")
        line = d.sign(s.selector.encode(), s.domain.encode(), s.key.private,
                      canonicalize=(head, body), include_headers=headers)
        value = line.decode("ascii").partition(":")[2]
        out.append(" ".join(value.split()))
    return out


class DkimSignPlugin(AuthPlugin):
    name = "dkim_sign"
    version = "1.0.0"
    description = "DKIM signing of outgoing mail (RSA, Ed25519, dual signing, oversigning)"
    priority = 90  # after the checks and scanners, so it signs the final headers
    failure_policy = FailurePolicy.TEMPFAIL  # never send mail unsigned by accident

    @staticmethod
    def keygen(path: Path, domain: str, selector: str, key_type: str,
               bits: int = 2048) -> str:
        """`elemta dkim keygen`: write a new private key, return its DNS TXT zone line."""
        pem, key = generate(KeyType(key_type), bits)
        write_private(path, pem)
        return zone_line(selector, domain, key)

    def __init__(self, config: AuthConfig | None, services: PluginServices) -> None:
        super().__init__(config, services)
        self.signers: dict[str, list[Signer]] = {}

    def _path(self, p: str) -> str:
        cfg = self.services.config
        return str(cfg.resolve(p)) if cfg is not None and hasattr(cfg, "resolve") else p

    async def start(self) -> None:
        for k in self.config.dkim_keys:
            try:
                key = load_key(self._path(k.key_file))
            except DkimKeyError as e:
                raise RuntimeError(f"authentication.dkim_keys ({k.domain}/{k.selector}): {e}")
            self.signers.setdefault(k.domain, []).append(Signer(k.domain, k.selector, key))
        await super().start()

    def signers_for(self, domain: str) -> list[Signer]:
        """The keys of ``domain`` or of its closest parent that has keys."""
        labels = domain.split(".")
        for i in range(len(labels) - 1):
            found = self.signers.get(".".join(labels[i:]))
            if found:
                return found
        return []

    def outgoing(self, ctx: HookContext) -> bool:
        return bool((self.config.dkim_sign_authenticated and ctx.auth_user is not None)
                    or (self.config.dkim_sign_relayed and ctx.relay_allowed))

    async def on_message(self, ctx: HookContext) -> HookResult:
        if ctx.message is None or not self.signers or not self.outgoing(ctx):
            return CONTINUE
        msg = ctx.message.with_changes(ctx.header_changes)
        signers = self.signers_for(from_domain(msg))
        if not signers:
            return CONTINUE
        headers = header_list(msg, self.config.dkim_sign_headers,
                              self.config.dkim_oversign_headers)
        values = await self.runtime.run(sign_message, msg, signers, headers,
                                        self.config.dkim_sign_canonicalization)
        # Added in reverse so the first signer's signature ends up on top.
        changes = tuple(HeaderChange(HeaderOp.ADD, "DKIM-Signature", v)
                        for v in reversed(values))
        return HookResult(headers=changes, tags={"dkim.signed": ",".join(
            f"{s.domain}/{s.selector}" for s in signers)})
