"""Across reloads the provider shares an unchanged external plugin (one process, stopped
when its last manager stops) and gives a changed entry a fresh handle."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from elemta_core.external.catalog import parse_entry
from elemta_core.external.provider import ExternalHandle, ExternalProvider, fingerprint
from elemta_core.external.supervisor import State
from elemta_core.plugins.api import PluginServices

CFG = SimpleNamespace(plugins=SimpleNamespace(mtls=False))  # what handles() reads of a Config


def entry(tmp: Path, digest: str = "a" * 64, **kw: object):  # type: ignore[no-untyped-def]
    return parse_entry({"name": "p", "command": ["{python}", "p.py"],
                        "sha256": {"p.py": digest}, **kw}, "x", tmp, "")


def test_fingerprint_covers_pins_config_and_place(tmp_path: Path) -> None:
    base = fingerprint(entry(tmp_path))
    assert fingerprint(entry(tmp_path)) == base
    assert fingerprint(entry(tmp_path, "b" * 64)) != base
    assert fingerprint(entry(tmp_path, config={"k": 1})) != base
    assert fingerprint(entry(tmp_path / "elsewhere")) != base


async def test_shared_handle_counts_its_users(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    prov = ExternalProvider()
    services = PluginServices(hostname="h", state_dir=tmp_path)
    started: list[str] = []
    stopped: list[str] = []

    async def fake_start(self) -> None:  # type: ignore[no-untyped-def]
        started.append(self.name)
        self._set(State.READY)

    async def fake_stop(self) -> None:  # type: ignore[no-untyped-def]
        stopped.append(self.name)
        self._set(State.STOPPED)

    async def ok(self) -> None:  # type: ignore[no-untyped-def]
        return None

    from elemta_core.external import supervisor

    monkeypatch.setattr(supervisor.Supervisor, "start", fake_start)
    monkeypatch.setattr(supervisor.Supervisor, "stop", fake_stop)
    monkeypatch.setattr(ExternalHandle, "_reverify", ok)
    e = entry(tmp_path)
    monkeypatch.setattr("elemta_core.external.catalog.enabled_entries", lambda cfg, names: [e])
    (h1,) = prov.handles(CFG, services, [])  # type: ignore[arg-type]
    await h1.start()
    (h2,) = prov.handles(CFG, services, [])  # type: ignore[arg-type]
    assert h2 is h1  # unchanged: shared
    await h2.start()
    await h1.stop()  # the old manager lets go: still running for the new one
    assert started == ["p"] and stopped == []
    e2 = entry(tmp_path, "b" * 64)
    monkeypatch.setattr("elemta_core.external.catalog.enabled_entries", lambda cfg, names: [e2])
    (h3,) = prov.handles(CFG, services, [])  # type: ignore[arg-type]
    assert h3 is not h1  # changed pins: a fresh one
    await h3.start()
    await h1.stop()
    assert started == ["p", "p"] and stopped == ["p"]
    (h4,) = prov.handles(CFG, services, [])  # type: ignore[arg-type]
    assert h4 is h3
