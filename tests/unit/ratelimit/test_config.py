from __future__ import annotations

import math
import string
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builtin_plugins.ratelimit.config import Count, Per, RateLimitConfig, parse_duration
from builtin_plugins.ratelimit.rules import Policy
from elemta_core.config.errors import ConfigError
from elemta_core.config.loader import parse_config


def load(body: dict[str, Any]) -> RateLimitConfig:
    cfg = parse_config({"rate_limiter": body}, {"rate_limiter": RateLimitConfig})
    section = cfg.section("rate_limiter")
    assert isinstance(section, RateLimitConfig)
    return section


def test_seed_section_and_defaults() -> None:
    cfg = load({"max_connections_per_ip": 5, "connection_rate_per_minute": 30})
    assert cfg.max_connections_per_ip == 5 and cfg.connection_rate_per_minute == 30
    assert cfg.backend.value == "memory" and cfg.on_backend_error.value == "allow"


def test_rules_and_overrides() -> None:
    cfg = load({
        "rules": [{"name": "per-sender", "per": "sender", "count": "messages", "limit": 3,
                   "period": "1h"},
                  {"name": "bytes", "per": "auth_user", "count": "bytes", "limit": 1000,
                   "period": 90}],
        "overrides": [{"network": "10.0.0.0/8", "max_connections_per_ip": 0,
                       "limits": {"per-sender": 100}}],
    })
    assert cfg.rules[0].per is Per.SENDER and cfg.rules[0].seconds == 3600.0
    assert cfg.rules[1].count is Count.BYTES and cfg.rules[1].seconds == 90.0
    assert cfg.overrides[0].limits == {"per-sender": 100}


@pytest.mark.parametrize(("body", "key", "words"), [
    ({"max_connections_per_ip": -1}, "rate_limiter.max_connections_per_ip", "must be >= 0"),
    ({"backend": "memcached"}, "rate_limiter.backend", "not allowed"),
    ({"on_backend_error": "maybe"}, "rate_limiter.on_backend_error", "not allowed"),
    ({"backend": "redis", "redis_url": "http://x"}, "rate_limiter.redis_url", "not a Redis URL"),
    ({"allow": ["not-a-net"]}, "rate_limiter.allow", "not an IP network"),
    ({"redis_tls_cert": "/c.pem"}, "rate_limiter.redis_tls_key", "is missing"),
    ({"backend": "redis", "redis_cluster": True, "redis_url": "unix:///run/redis.sock"},
     "rate_limiter.redis_cluster", "not a unix socket"),
    ({"rules": [{"name": "Bad Name", "per": "ip", "count": "messages", "limit": 1}]},
     "rate_limiter.rules[0].name", "not a valid rule name"),
    ({"rules": [{"name": "x", "per": "ip", "count": "messages", "limit": 1, "period": "1 week"}]},
     "rate_limiter.rules[0].period", "not a duration"),
    ({"rules": [{"name": "x", "per": "planet", "count": "messages", "limit": 1}]},
     "rate_limiter.rules[0].per", "not allowed"),
    ({"rules": [{"name": "x", "per": "ip", "count": "messages", "limit": 1}] * 2},
     "rate_limiter.rules[1].name", "used twice"),
    ({"overrides": [{"network": "10.0.0.0/8", "limits": {"nope": 1}}]},
     "rate_limiter.overrides[0].limits.nope", "names no rule"),
    ({"surprise": 1}, "rate_limiter.surprise", "unknown key"),
])
def test_bad_values_name_key_and_fix(body: dict[str, Any], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as e:
        load(body)
    assert e.value.key == key and words in e.value.problem and e.value.fix


def test_durations() -> None:
    assert parse_duration("k", "90s") == 90 and parse_duration("k", "2d") == 172800
    assert parse_duration("k", 1.5) == 1.5
    for bad in (0, -1, float("nan"), float("inf"), "400d"):
        with pytest.raises(ConfigError):
            parse_duration("k", bad)


keys_ = st.sampled_from(sorted({*RateLimitConfig.__dataclass_fields__, "network", "name",
                                 "per", "count", "limit", "period", "limits", "bogus"}))
scalars = (st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True)
           | st.text(string.printable, max_size=20)
           | st.sampled_from(["1h", "redis", "sender", "bytes", "10.0.0.0/8", "tempfail"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(keys_, inner, max_size=5), max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys_, values, max_size=8))
def test_any_table_loads_or_explains(table: dict[str, Any]) -> None:
    try:
        cfg = load(table)
    except ConfigError as e:
        assert e.key.startswith("rate_limiter") and e.problem
    else:
        assert all(math.isfinite(r.seconds) for r in cfg.rules)
        Policy(cfg).client("203.0.113.1")


@pytest.mark.parametrize("body", [{"lease_ttl": float("nan")}, {"retry_interval": float("inf")},
                                  {"timeout_ms": 0},
                                  {"rules": [{"name": "x", "per": "ip", "count": "bytes",
                                              "limit": 1, "period": float("inf")}]}])
def test_non_finite_and_out_of_range_numbers_are_refused(body: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="out of range"):
        load(body)
