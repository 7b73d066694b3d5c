"""[antispam] and [antivirus] sections: good values load, bad ones say which key and how to fix."""

from __future__ import annotations

import pytest

from builtin_plugins.scanning.config import (
    AntispamConfig,
    AntivirusConfig,
    ClamdAddress,
    ClamdTransport,
)
from elemta_core.config.errors import ConfigError
from elemta_core.config.loader import parse_config
from elemta_core.hooks.types import FailurePolicy

SECTIONS = {"antispam": AntispamConfig, "antivirus": AntivirusConfig}


def test_defaults_load_from_an_empty_config() -> None:
    cfg = parse_config({}, SECTIONS)
    spam, av = cfg.section("antispam"), cfg.section("antivirus")
    assert spam.rspamd_url == "http://127.0.0.1:11333"
    assert spam.failure_policy is None and spam.reject_action == "reject"
    assert av.address == ClamdAddress(ClamdTransport.TCP, "127.0.0.1", 3310)
    assert av.action == "reject" and av.oversize == "skip"


def test_seed_style_sections_load() -> None:
    cfg = parse_config({
        "antispam": {"rspamd_url": "http://rspamd.internal:11333/", "timeout": 3,
                     "reject_score": 12, "add_header_score": 5.5, "failure_policy": "continue",
                     "reject_action": "quarantine"},
        "antivirus": {"clamd": "unix:/run/clamav/clamd.ctl", "action": "quarantine",
                      "oversize": "reject", "failure_policy": "tempfail"},
    }, SECTIONS)
    spam, av = cfg.section("antispam"), cfg.section("antivirus")
    assert spam.timeout == 3.0 and spam.reject_score == 12.0
    assert spam.failure_policy is FailurePolicy.CONTINUE
    assert av.address == ClamdAddress(ClamdTransport.UNIX, path="/run/clamav/clamd.ctl")
    assert av.failure_policy is FailurePolicy.TEMPFAIL


@pytest.mark.parametrize(("section", "body", "key"), [
    ("antispam", {"rspamd_url": "127.0.0.1:11333"}, "antispam.rspamd_url"),
    ("antispam", {"rspamd_url": "ftp://x"}, "antispam.rspamd_url"),
    ("antispam", {"timeout": 0}, "antispam.timeout"),
    ("antispam", {"max_size": -1}, "antispam.max_size"),
    ("antispam", {"reject_action": "bounce"}, "antispam.reject_action"),
    ("antispam", {"failure_policy": "ignore"}, "antispam.failure_policy"),
    ("antispam", {"spam_header": "X Spam"}, "antispam.spam_header"),
    ("antispam", {"reject_score": "high"}, "antispam.reject_score"),
    ("antispam", {"rspamd": "http://x"}, "antispam.rspamd"),
    ("antivirus", {"clamd": "127.0.0.1:3310"}, "antivirus.clamd"),
    ("antivirus", {"clamd": "tcp://127.0.0.1"}, "antivirus.clamd"),
    ("antivirus", {"clamd": "tcp://127.0.0.1:99999"}, "antivirus.clamd"),
    ("antivirus", {"clamd": "unix:relative/path"}, "antivirus.clamd"),
    ("antivirus", {"chunk_size": 0}, "antivirus.chunk_size"),
    ("antivirus", {"max_size": 0}, "antivirus.max_size"),
    ("antivirus", {"action": "ignore"}, "antivirus.action"),
    ("antivirus", {"oversize": "accept"}, "antivirus.oversize"),
])
def test_bad_values_name_the_key(section: str, body: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config({section: body}, SECTIONS)
    assert e.value.key == key
    assert e.value.fix


@pytest.mark.parametrize(("text", "expected"), [
    ("tcp://127.0.0.1:3310", ClamdAddress(ClamdTransport.TCP, "127.0.0.1", 3310)),
    ("tcp://[::1]:3310", ClamdAddress(ClamdTransport.TCP, "::1", 3310)),
    ("unix:/run/clamd.sock", ClamdAddress(ClamdTransport.UNIX, path="/run/clamd.sock")),
    ("unix:///run/clamd.sock", ClamdAddress(ClamdTransport.UNIX, path="/run/clamd.sock")),
])
def test_clamd_addresses(text: str, expected: ClamdAddress) -> None:
    assert ClamdAddress.parse(text) == expected
    assert ClamdAddress.parse(str(expected)) == expected
