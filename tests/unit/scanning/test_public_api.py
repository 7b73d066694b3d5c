"""The scanning package's public surface, pinned: a change here is a deliberate API change."""

from __future__ import annotations

import importlib

import pytest

SURFACE = {
    "builtin_plugins.scanning.config": [
        "AntispamConfig", "AntivirusConfig", "ClamdAddress", "Oversize", "Verdict"],
    "builtin_plugins.scanning.clamd_client": [
        "ClamdClient", "ClamdError", "ScanResult", "ScanStatus"],
    "builtin_plugins.scanning.rspamd_client": [
        "MilterChanges", "RspamdAction", "RspamdClient", "RspamdEnvelope", "RspamdError",
        "RspamdResult", "parse_result"],
    "builtin_plugins.scanning.rspamd": ["RspamdPlugin"],
    "builtin_plugins.scanning.clamav": ["ClamAVPlugin"],
    "builtin_plugins.scanning.failure": ["scanner_failed"],
}


@pytest.mark.parametrize("module", sorted(SURFACE))
def test_public_surface(module: str) -> None:
    mod = importlib.import_module(module)
    assert sorted(mod.__all__) == sorted(SURFACE[module])
    for name in mod.__all__:
        assert hasattr(mod, name)


def test_entry_points_name_the_plugins() -> None:
    from builtin_plugins.scanning.clamav import ClamAVPlugin
    from builtin_plugins.scanning.rspamd import RspamdPlugin
    from elemta_core.plugins.manager import discover

    found = discover()
    assert found["antispam"] is RspamdPlugin and found["antivirus"] is ClamAVPlugin
    assert (RspamdPlugin.config_section, ClamAVPlugin.config_section) == ("antispam", "antivirus")
