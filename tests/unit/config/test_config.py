from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from elemta_core.config import ConfigError, load_config
from elemta_core.config.loader import parse_config
from elemta_core.config.model import SyncMode
from elemta_core.hooks.types import FailurePolicy


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "elemta.toml"
    p.write_text(text)
    return p


def test_embedded_defaults_match_design() -> None:
    cfg = load_config(None)
    assert cfg.server.listen == ["127.0.0.1:2525"]
    assert cfg.delivery.local_domains == ["localhost"]
    assert cfg.server.relay_networks == []  # never an open relay by default
    assert cfg.plugins.enabled is None  # the installed default set
    assert cfg.spool.sync is SyncMode.FSYNC


def test_full_config_and_relative_paths(tmp_path: Path) -> None:
    p = write(tmp_path, """
[server]
listen = ["127.0.0.1:2526", "[::1]:2527"]
hostname = "mx.example.org"
state_dir = "state"
relay_networks = ["192.0.2.0/24"]
[delivery]
local_domains = ["Example.ORG."]
[plugins]
directory = "./plugins"
enabled = ["rate_limiter"]
[plugins.options.rate_limiter]
priority = 3
failure_policy = "continue"
""")
    cfg = load_config(p)
    assert cfg.state_dir == tmp_path / "state"
    assert cfg.admin_socket == tmp_path / "state" / "admin.sock"
    assert cfg.delivery.local_domains == ["example.org"]
    assert cfg.plugins.options["rate_limiter"].failure_policy is FailurePolicy.CONTINUE
    assert cfg.plugins.options["rate_limiter"].priority == 3


@pytest.mark.parametrize("text,key,fix", [
    ("[server]\nlisten = \"127.0.0.1:25\"\n", "server.listen", "write server.listen = [ ... ]"),
    ("[server]\nmax_recipients = \"10\"\n", "server.max_recipients", "without quotes"),
    ("[server]\nmax_recipients = 0\n", "server.max_recipients", "positive"),
    ("[server]\nlisten = [\"nohost\"]\n", "server.listen[0]", "host:port"),
    ("[server]\nrelay_networks = [\"10.0.0.0/33\"]\n", "server.relay_networks", "CIDR"),
    ("[server]\nlistne = []\n", "server.listne", "use one of:"),
    ("[sever]\n", "sever", "use one of:"),
    ("[spool]\nsync = \"sometimes\"\n", "spool.sync", "'fsync', 'syncfs'"),
    ("[plugins.options.x]\nfailure_policy = \"maybe\"\n", "plugins.options.x.failure_policy", "'tempfail'"),
    ("[server]\ntls_cert = \"a.pem\"\n", "server.tls_key", "set both"),
    ("[server\n", "(syntax)", "TOML syntax"),
])
def test_errors_name_file_key_and_fix(tmp_path: Path, text: str, key: str, fix: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    line = str(e.value)
    assert "\n" not in line
    assert line.startswith(f"{p}: {key}:"), line
    assert "fix:" in line and fix in line


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


@dataclass
class Section:
    limit: int = 5
    names: list[str] = field(default_factory=list)


def test_plugin_sections_are_validated_by_their_schema() -> None:
    cfg = parse_config({"rate_limiter": {"limit": 7}}, {"rate_limiter": Section})
    assert cfg.section("rate_limiter") == Section(7, [])
    with pytest.raises(ConfigError, match=r"rate_limiter.names\[1\]: expected a string"):
        parse_config({"rate_limiter": {"names": ["a", 2]}}, {"rate_limiter": Section})
    # sections of installed plugins exist with defaults even when not written
    assert parse_config({}, {"rate_limiter": Section}).section("rate_limiter") == Section()
