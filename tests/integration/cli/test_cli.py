"""The elemta CLI as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from elemta_core import __version__

REPO = Path(__file__).resolve().parents[3]


def elemta(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "elemta_core.cli.main", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def test_version() -> None:
    out = elemta("version")
    assert out.returncode == 0 and out.stdout.strip() == f"elemta {__version__}"


def test_config_check_ok_and_error(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('[server]\nlisten = ["127.0.0.1:2600"]\n[plugins]\nenabled = []\n')
    out = elemta("config", "check", "-c", str(good))
    assert out.returncode == 0 and "OK" in out.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nmax_message_size = -1\n")
    out = elemta("config", "check", "-c", str(bad))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1
    assert f"{bad}: server.max_message_size: must be > 0" in lines[0] and "fix:" in lines[0]


def test_unknown_plugin_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[plugins]\nenabled = ["no_such_plugin"]\n')
    out = elemta("config", "check", "-c", str(bad))
    assert out.returncode == 2
    assert "plugins.enabled: no plugin named 'no_such_plugin'" in out.stderr


def test_serve_refuses_bad_config_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nidle_timeout = \"soon\"\n")
    out = elemta("serve", "-c", str(bad))
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0
    assert "server.idle_timeout: expected a number" in out.stderr


def test_plugin_list_without_daemon_shows_stopped(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[server]\nstate_dir = "{tmp_path / "st"}"\n')
    out = elemta("plugin", "list", "--json", "-c", str(cfg))
    assert out.returncode == 0, out.stderr
    import json

    plugins = json.loads(out.stdout)["plugins"]
    assert all(p["state"] == "stopped" for p in plugins)


def test_user_hash_makes_a_verifiable_hash() -> None:
    from elemta_core.smtp.users import verify_password

    out = subprocess.run([sys.executable, "-m", "elemta_core.cli.main", "user", "hash",
                          "--password", "pw"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert verify_password(b"pw", out.stdout.strip())
    assert not verify_password(b"other", out.stdout.strip())
