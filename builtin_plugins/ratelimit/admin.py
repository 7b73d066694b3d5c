"""``ratelimit.show`` and ``ratelimit.reset`` on the admin socket: the live counters.

The daemon answers for either backend, so ``elemta ratelimit show`` reads the very store the
running limiter uses (its memory, or the shared Redis).
"""

from __future__ import annotations

import math
from typing import Any

from builtin_plugins.ratelimit import keys
from builtin_plugins.ratelimit.backend import Backend, KeyState
from builtin_plugins.ratelimit.config import Per
from builtin_plugins.ratelimit.gcra import US, used
from builtin_plugins.ratelimit.rules import Policy

#: Selectors ``show``/``reset`` accept, and the rules each one covers.
SELECTORS: dict[str, tuple[Per, ...]] = {
    "ip": (Per.IP,),
    "sender": (Per.SENDER, Per.SENDER_DOMAIN),
    "auth_user": (Per.AUTH_USER,),
    "domain": (Per.RECIPIENT_DOMAIN, Per.SENDER_DOMAIN),
}
MAX_LISTED = 1000


def _targets(policy: Policy, args: dict[str, Any]) -> list[tuple[str, str, int, float]]:
    unknown = sorted(set(args) - {*SELECTORS, "all"})
    if unknown:
        raise ValueError(f"unknown selector {unknown[0]!r}; use one of: "
                         f"{', '.join(SELECTORS)} or all")
    out: list[tuple[str, str, int, float]] = []
    for sel, pers in SELECTORS.items():
        value = args.get(sel)
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{sel} must be a non-empty string")
        value = value.strip()
        for per in pers:
            v = keys.domain_of(value) if per is Per.SENDER_DOMAIN and "@" in value else value
            out += policy.keys_for(per, v)
    return list({t[0]: t for t in out}.values())


def _row(key: str, name: str, limit: int, period: float, st: KeyState) -> dict[str, Any]:
    row: dict[str, Any] = {"key": key, "limit_name": name, "limit": limit or None}
    if st.kind == "lease":
        row.update(kind="connections", current=st.leases)
    elif st.kind == "rate" and limit:
        interval = period * US / limit
        row.update(kind="rate", period_s=period,
                   current=math.ceil(used(st.tat_us, st.now_us, interval) - 1e-9),
                   reset_in_s=round(max(0.0, (st.tat_us or 0) - st.now_us) / US, 3))
    else:
        row.update(kind="rate" if period else "connections", current=0)
    return row


async def show(policy: Policy, backend: Backend, args: dict[str, Any]) -> dict[str, Any]:
    targets = _targets(policy, args)
    if targets:
        states = await backend.inspect([t[0] for t in targets])
        rows = [_row(*t, states[t[0]]) for t in targets]
        return {"backend": backend.name, "counters": rows}
    found = await backend.scan(policy.prefix + ":", MAX_LISTED)
    states = await backend.inspect(found)
    rows = []
    for k in found:
        st = states[k]
        if st.kind == "lease":
            rows.append({"key": k, "kind": "connections", "current": st.leases})
        elif st.kind == "rate":
            rows.append({"key": k, "kind": "rate",
                         "reset_in_s": round(max(0.0, (st.tat_us or 0) - st.now_us) / US, 3)})
    return {"backend": backend.name, "counters": rows, "truncated": len(found) >= MAX_LISTED}


async def reset(policy: Policy, backend: Backend, args: dict[str, Any]) -> dict[str, Any]:
    targets = _targets(policy, args)
    if targets:
        return {"deleted": await backend.delete([t[0] for t in targets])}
    if args.get("all") is not True:
        raise ValueError("say what to reset: ip, sender, auth_user, domain, or all")
    deleted = 0
    while found := await backend.scan(policy.prefix + ":", MAX_LISTED):
        deleted += await backend.delete(found)
        if len(found) < MAX_LISTED:
            break
    return {"deleted": deleted}
