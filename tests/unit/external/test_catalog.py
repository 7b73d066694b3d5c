"""Catalog entries: strict validation, includes, the plugins directory, enabled semantics."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from elemta_core.config.errors import ConfigError
from elemta_core.config.loader import parse_config
from elemta_core.external import catalog
from elemta_core.external.provider import ExternalProvider
from elemta_core.plugins.api import PluginServices

DIGEST = "a" * 64


def entry(**kw: object) -> dict[str, object]:
    return {"name": "grey", "command": ["{python}", "plugin.py"],
            "sha256": {"plugin.py": DIGEST}, **kw}


def config(tmp: Path, **plugins: object):  # type: ignore[no-untyped-def]
    return parse_config({"plugins": {"enabled": [], **plugins}}, path=tmp / "elemta.toml")


@pytest.mark.parametrize(("data", "key", "problem"), [
    (entry(name="Bad Name"), "plugins.external[0].name", "is not a plugin name"),
    (entry(command=[]), "plugins.external[0].command", "is empty"),
    (entry(sha256={}), "plugins.external[0].sha256", "every file that runs must be pinned"),
    (entry(sha256={"plugin.py": "xyz"}), "plugins.external[0].sha256.plugin.py",
     "is not a SHA-256"),
    (entry(hooks_timeout_ms=0), "plugins.external[0].hooks_timeout_ms", "must be > 0"),
    (entry(failure_policy="maybe"), "plugins.external[0].failure_policy", "is not allowed"),
    (entry(mode="carrier-pigeon"), "plugins.external[0].mode", "is not allowed"),
    (entry(colour="blue"), "plugins.external[0].colour", "unknown key"),
    (entry(limits={"memory_mb": -1}), "plugins.external[0].limits.memory_mb", "must be >= 0"),
    ({"command": ["x"]}, "plugins.external[0].name", "is required"),
])
def test_bad_entries_name_the_key_and_the_fix(tmp_path: Path, data: object, key: str,
                                              problem: str) -> None:
    cfg = config(tmp_path, external=[data])
    with pytest.raises(ConfigError) as exc:
        catalog.declared(cfg)
    assert exc.value.key == key and problem in exc.value.problem and exc.value.fix
    assert exc.value.file == str(tmp_path / "elemta.toml")


def test_paths_are_relative_to_the_declaring_file(tmp_path: Path) -> None:
    inc = tmp_path / "plugins" / "grey"
    inc.mkdir(parents=True)
    (inc / "catalog.toml").write_text(
        '[[plugins.external]]\nname = "grey"\ncommand = ["{python}", "plugin.py", "-v"]\n'
        f'sha256 = {{ "plugin.py" = "{DIGEST}" }}\n')
    cfg = config(tmp_path, include=["plugins/grey/catalog.toml"],
                 external=[entry(name="local", command=["bin/local"],
                                 sha256={"bin/local": DIGEST})])
    found = catalog.declared(cfg)
    assert set(found) == {"grey", "local"}
    assert found["grey"].argv() == [sys.executable, str(inc / "plugin.py"), "-v"]
    assert found["grey"].pinned() == {inc / "plugin.py": DIGEST}
    assert found["local"].argv() == [str(tmp_path / "bin" / "local")]


def test_an_entry_that_is_not_a_table_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="plugins.external.0.: expected a table"):
        config(tmp_path, external=["greylist"])


def test_a_name_declared_twice_is_an_error(tmp_path: Path) -> None:
    cfg = config(tmp_path, external=[entry(), entry()])
    with pytest.raises(ConfigError, match="declared twice"):
        catalog.declared(cfg)


def test_a_catalog_file_holds_only_external_entries(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text('[server]\nhostname = "x"\n')
    with pytest.raises(ConfigError, match="holds only"):
        catalog.declared(config(tmp_path, include=["c.toml"]))
    with pytest.raises(ConfigError, match="does not exist"):
        catalog.declared(config(tmp_path, include=["missing.toml"]))
    (tmp_path / "bad.toml").write_text("[[plugins.external]\n")
    with pytest.raises(ConfigError, match=r"\(syntax\)"):
        catalog.declared(config(tmp_path, include=["bad.toml"]))


def test_enabled_semantics(tmp_path: Path) -> None:
    pdir = tmp_path / "plugins" / "dirplug"
    pdir.mkdir(parents=True)
    (pdir / "catalog.toml").write_text(
        f'[[plugins.external]]\nname = "dirplug"\ncommand = ["x"]\nsha256 = {{ "x" = "{DIGEST}" }}\n')
    cfg = config(tmp_path, external=[entry(), entry(name="off", enabled=False)])
    provider = ExternalProvider()
    assert provider.claims("grey", cfg) and provider.claims("dirplug", cfg)
    assert not provider.claims("nothing", cfg)
    services = PluginServices(hostname="h", state_dir=tmp_path)
    # declared entries run without being named; directory plugins and "off" only when named
    assert [h.name for h in provider.handles(cfg, services, [])] == ["grey"]
    names = [h.name for h in provider.handles(cfg, services, ["dirplug", "off"])]
    assert names == ["grey", "dirplug", "off"]


def test_manager_accepts_external_names_in_enabled(tmp_path: Path) -> None:
    from elemta_core.plugins.manager import PluginManager

    cfg = parse_config({"plugins": {"enabled": ["grey"], "external": [entry()]}},
                       path=tmp_path / "e.toml")
    mgr = PluginManager(cfg, PluginServices(hostname="h", state_dir=tmp_path), classes={})
    mgr.add_provider(ExternalProvider())
    handles = mgr.build()
    assert [(h.name, h.kind) for h in handles] == [("grey", "external")]
    info = handles[0].info()
    assert info["state"] == "stopped" and info["hooks"] == [] and info["pid"] is None
