"""The [authentication] section: the seed's keys as written, and errors that name the fix."""

from __future__ import annotations

import pytest

from builtin_plugins.auth.config import AuthConfig, PolicyAction
from builtin_plugins.auth.policy import Refusal, decide, printable
from elemta_core.config.errors import ConfigError
from elemta_core.config.schema import load_section
from elemta_core.hooks.types import Action


def load(table: dict[str, object]) -> AuthConfig:
    return load_section(AuthConfig, table, "authentication")


def test_seed_keys_as_written() -> None:
    cfg = load({"spf_enabled": True, "dkim_enabled": True, "dmarc_enabled": True,
                "dmarc_policy": "quarantine"})
    assert cfg.dmarc_policy == "quarantine"
    assert cfg.spf_action("fail") is PolicyAction.TAG  # detection only, unless configured


def test_actions_and_keys() -> None:
    cfg = load({"spf_actions": {"fail": "reject", "temperror": "tempfail"},
                "dkim_keys": [{"domain": "Example.ORG.", "selector": "s1", "key_file": "k"}]})
    assert cfg.spf_action("fail") is PolicyAction.REJECT
    assert cfg.dkim_keys[0].domain == "example.org"


@pytest.mark.parametrize("table, key", [
    ({"dmarc_policy": "block"}, "authentication.dmarc_policy"),
    ({"spf_actions": {"fial": "reject"}}, "authentication.spf_actions.fial"),
    ({"spf_actions": {"fail": "bounce"}}, "authentication.spf_actions.fail"),
    ({"dkim_actions": {"softfail": "reject"}}, "authentication.dkim_actions.softfail"),
    ({"dkim_keys": [{"domain": "x", "selector": "s", "key_file": "k"}]},
     "authentication.dkim_keys[0].domain"),
    ({"dkim_keys": [{"domain": "a.test", "selector": "a;b", "key_file": "k"}]},
     "authentication.dkim_keys[0].selector"),
    ({"dkim_keys": [{"domain": "a.test", "selector": "s"}]},
     "authentication.dkim_keys[0].key_file"),
    ({"arc_seal_domain": "a.test"}, "authentication.arc_seal_key"),
    ({"arc_max_instances": 51}, "authentication.arc_max_instances"),
    ({"dkim_min_key_bits": 256}, "authentication.dkim_min_key_bits"),
    ({"dkim_sign_headers": ["subject"]}, "authentication.dkim_sign_headers"),
    ({"dkim_sign_canonicalization": "simple/simple"},
     "authentication.dkim_sign_canonicalization"),
    ({"spf": True}, "authentication.spf"),
])
def test_errors_name_the_key(table: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as e:
        load(table)
    assert e.value.key == key, e.value


REFUSAL = Refusal(550, "5.7.23", "SPF validation failed")


def test_decide_maps_actions() -> None:
    tags = {"spf.result": "fail"}
    tag = decide(PolicyAction.TAG, REFUSAL, reason="r", tags=tags)
    assert tag.action is Action.CONTINUE and tag.tags == tags
    rej = decide(PolicyAction.REJECT, REFUSAL, reason="r", tags=tags)
    assert (rej.action, rej.code, rej.enhanced) == (Action.REJECT, 550, "5.7.23")
    tmp = decide(PolicyAction.TEMPFAIL, REFUSAL, reason="r", tags=tags)
    assert (tmp.action, tmp.code, tmp.enhanced) == (Action.TEMPFAIL, 451, "4.7.23")
    q = decide(PolicyAction.QUARANTINE, REFUSAL, reason="why", tags=tags)
    assert q.action is Action.QUARANTINE and q.reason == "why"


def test_printable() -> None:
    assert printable("a\r\nb\x00c  d") == "a b c d"
    assert len(printable("x" * 500, 50)) == 50
