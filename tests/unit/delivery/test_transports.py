"""Routing: transport rules, relayhost, local domains and MX, and their config errors."""

from __future__ import annotations

import pytest

from elemta_core.config.errors import ConfigError
from elemta_core.config.loader import parse_config
from elemta_core.delivery.transports import LOCAL, Kind, Route, Router, parse_transport


def test_specs_parse_like_postfix() -> None:
    assert parse_transport("t", "smtp:[127.0.0.1]:2526") == Route(Kind.SMTP, "127.0.0.1", 2526)
    assert parse_transport("t", "smtp:mx.example.com") == Route(
        Kind.SMTP, "mx.example.com", 25, mx=True)
    assert parse_transport("t", "lmtp:unix:/run/dovecot/lmtp") == Route(
        Kind.LMTP, unix_path="/run/dovecot/lmtp")
    assert parse_transport("t", "lmtp:127.0.0.1:24") == Route(Kind.LMTP, "127.0.0.1", 24)
    assert parse_transport("t", "lmtp:[::1]:2424") == Route(Kind.LMTP, "::1", 2424)
    assert parse_transport("t", "local") is LOCAL


@pytest.mark.parametrize("spec", ["", "smtp", "smtp:", "uucp:host", "lmtp:unix:relative/sock",
                                  "smtp:[127.0.0.1]:99999", "smtp:[]:25", "smtp:a b:25"])
def test_bad_specs_name_the_key(spec: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_transport("transports.example.com", spec)
    assert e.value.key.startswith("transports.example.com")


def test_router_precedence() -> None:
    router = Router.from_config(parse_config({"delivery": {
        "local_domains": ["localhost", "example.org"],
        "transports": {"example.com": "lmtp:unix:/run/lmtp", ".sub.example.net": "smtp:[10.0.0.1]:2525",
                       "example.org": "smtp:[10.0.0.2]"},
        "relayhost": "smarthost.test:587", "relayhost_username": "u", "relayhost_password": "p",
    }}).delivery)
    assert router.route("a@Example.COM").unix_path == "/run/lmtp"
    assert router.route("a@x.sub.example.net").host == "10.0.0.1"
    assert router.route("a@example.org").host == "10.0.0.2"  # a rule beats a local domain
    assert router.route("a@localhost") is LOCAL
    relay = router.route("a@elsewhere.test")
    assert (relay.host, relay.port, relay.mx, relay.auth) == ("smarthost.test", 587, False, ("u", "p"))


def test_without_relayhost_other_domains_go_to_their_mx() -> None:
    router = Router.from_config(parse_config({"delivery": {"smtp_port": 2600}}).delivery)
    r = router.route("bob@remote.test")
    assert (r.kind, r.host, r.port, r.mx) == (Kind.SMTP, "remote.test", 2600, True)
    assert r.key == "smtp:remote.test:2600"


@pytest.mark.parametrize("delivery, key", [
    ({"relayhost": "host:notaport"}, "delivery.relayhost"),
    ({"relayhost": "host:25", "relayhost_username": "u"}, "delivery.relayhost_password"),
    ({"transports": {"example.com": "ftp:x"}}, "delivery.transports.example.com"),
    ({"transports": {"bad domain": "local"}}, "delivery.transports.bad domain"),
    ({"tls": "sometimes"}, "delivery.tls"),
    ({"smtp_port": 0}, "delivery.smtp_port"),
])
def test_delivery_config_errors(delivery: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config({"delivery": delivery})
    assert e.value.key == key and e.value.fix
