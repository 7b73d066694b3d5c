from __future__ import annotations

from builtin_plugins.ratelimit import keys
from builtin_plugins.ratelimit.config import (
    Count,
    Override,
    Per,
    RateLimitConfig,
    Rule,
)
from builtin_plugins.ratelimit.rules import Policy, Standing
from elemta_core.hooks.context import HookContext


def policy(**kw: object) -> Policy:
    cfg = RateLimitConfig(**kw)  # type: ignore[arg-type]
    for r in cfg.rules:
        r.validate()
    return Policy(cfg)


def test_allow_deny_and_most_specific_override() -> None:
    p = policy(allow=["192.0.2.0/24"], deny=["198.51.100.7/32"],
               rules=[Rule("m", Per.SENDER, Count.MESSAGES, 10)],
               overrides=[Override("10.0.0.0/8", max_connections_per_ip=50),
                          Override("10.1.0.0/16", connection_rate_per_minute=0,
                                   limits={"m": 0})])
    assert p.client("192.0.2.9").standing is Standing.ALLOWED
    assert p.client("198.51.100.7").standing is Standing.DENIED
    assert p.client("::ffff:198.51.100.7").standing is Standing.DENIED
    wide = p.client("10.9.9.9")
    assert (wide.max_connections, wide.connection_rate, wide.limits) == (50, 60, (10,))
    narrow = p.client("10.1.2.3")
    assert (narrow.max_connections, narrow.connection_rate, narrow.limits) == (10, 0, (0,))
    assert p.client("203.0.113.1").standing is Standing.LIMITED


def test_ipv6_clients_count_per_prefix_and_keys_carry_hash_tags() -> None:
    p = policy()
    a, b = p.client("2001:db8::1"), p.client("2001:db8::ffff:2")
    assert a.address == b.address == "2001:db8::/64"
    charges, lease = p.connect(a, "node:s1")
    assert lease is not None and lease.key == "elemta:rl:{ip:2001:db8::/64}:conn"
    assert keys.hash_tag(charges[0].key) == keys.hash_tag(lease.key) == "ip:2001:db8::/64"


def test_each_hook_charges_its_rules() -> None:
    p = policy(rules=[
        Rule("sender-msgs", Per.SENDER, Count.MESSAGES, 5),
        Rule("user-msgs", Per.AUTH_USER, Count.MESSAGES, 5),
        Rule("rcpts", Per.IP, Count.RECIPIENTS, 5),
        Rule("dom-msgs", Per.RECIPIENT_DOMAIN, Count.MESSAGES, 5),
        Rule("bytes", Per.SENDER_DOMAIN, Count.BYTES, 10_000),
    ])
    client = p.client("203.0.113.5")
    ctx = HookContext("s", "203.0.113.5", mail_from="Alice@Example.ORG")
    # No authenticated user: the auth_user rule does not apply.
    assert [c.name for c in p.mail_from(ctx, client)] == ["sender-msgs"]
    assert p.mail_from(ctx, client)[0].key == "elemta:rl:{sender:alice@example.org}:sender-msgs"
    first = p.rcpt_to(ctx, client, "bob@dest.example")
    assert [c.name for c in first] == ["rcpts", "dom-msgs"]
    ctx.recipients.append("bob@dest.example")
    # A second recipient in the same domain is not a second message for that domain.
    assert [c.name for c in p.rcpt_to(ctx, client, "carol@DEST.example")] == ["rcpts"]
    [b] = p.message(ctx, client, 4096)
    assert b.cost == 4096 and b.key == "elemta:rl:{sender_domain:example.org}:bytes"


def test_weird_subjects_cannot_escape_their_tag_or_grow_keys() -> None:
    k = keys.key("p", "sender", "a}b{c@x", "r")
    assert keys.hash_tag(k) == "sender:a%7db%7bc@x"
    long = keys.key("p", "sender", "x" * 5000, "r")
    assert len(long) < 100
