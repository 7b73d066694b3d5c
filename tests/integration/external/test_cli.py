"""`elemta plugin test / info / pin` against the real example plugins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.integration.external.conftest import EXAMPLES, REPO

ELEMTA = [sys.executable, "-m", "elemta_core.cli.main"]


def elemta(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    return subprocess.run([*ELEMTA, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def test_plugin_test_message_hook_with_a_large_message(tmp_path: Path) -> None:
    eml = tmp_path / "big.eml"
    eml.write_bytes(b"Subject: big\nFrom: a@example.org\n\n" + b"x" * 76 + b"\n" * 1
                    + (b"y" * 998 + b"\n") * 6000)  # ~6 MiB: above gRPC's 4 MiB default
    r = elemta("plugin", "test", str(EXAMPLES / "python_filter" / "catalog.toml"),
               "--hook", "message", "--message", str(eml), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["action"] == "continue" and out["tags"] == {"filter.result": "pass"}
    assert out["headers"] == [{"op": "add", "name": "X-Elemta-Filter",
                               "value": "pass (python_filter 1.0.0)", "index": 0}]


def test_plugin_test_by_name_from_a_config_include(tmp_path: Path) -> None:
    cfg = tmp_path / "elemta.toml"
    cfg.write_text(f'[server]\nstate_dir = "{tmp_path / "state"}"\n[plugins]\nenabled = []\n'
                   f'include = ["{EXAMPLES / "greylist" / "catalog.toml"}"]\n')
    r = elemta("plugin", "test", "greylist", "--hook", "rcpt_to", "--mail-from", "a@x.org",
               "--rcpt", "bob@localhost", "--repeat", "50", "-c", str(cfg))
    assert r.returncode == 0, r.stderr
    assert "greylist rcpt_to: TEMPFAIL" in r.stdout
    assert "451 4.7.1 Greylisted, please try again in" in r.stdout
    assert "50 calls: p50" in r.stderr


def test_plugin_test_refuses_a_hook_the_plugin_does_not_register() -> None:
    r = elemta("plugin", "test", str(EXAMPLES / "greylist" / "catalog.toml"), "--hook", "helo")
    assert r.returncode == 1
    assert "does not register the helo hook (it registers: rcpt_to)" in r.stderr


def test_plugin_test_unknown_name_is_a_clear_error(tmp_path: Path) -> None:
    r = elemta("plugin", "test", "nosuch", "--hook", "helo")
    assert r.returncode == 2 and "no external plugin named 'nosuch'" in r.stderr


def test_plugin_info() -> None:
    r = elemta("plugin", "info", str(EXAMPLES / "allowdeny" / "catalog.toml"), "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["name"] == "allowdeny" and info["version"] == "1.0.0" and info["streaming"]
    assert info["hook_priorities"] == {"connect": 20, "helo": 20, "mail_from": 20, "rcpt_to": 20}
    assert info["failure_policy"] == "tempfail" and info["state"] == "ready"


def test_plugin_pin(tmp_path: Path) -> None:
    (tmp_path / "plugin.py").write_text("print(1)\n")
    cat = tmp_path / "catalog.toml"
    cat.write_text('[[plugins.external]]\nname = "p"\ncommand = ["{python}", "plugin.py"]\n'
                   f'sha256 = {{ "plugin.py" = "{"0" * 64}" }}\n')
    r = elemta("plugin", "pin", str(cat))
    assert r.returncode == 0 and "updated plugin.py" in r.stdout
    assert elemta("plugin", "pin", str(cat)).stdout.strip().endswith("up to date")


def test_plugin_test_shows_tags_and_headers_collected_from_continue_answers(
        tmp_path: Path) -> None:
    """The JSON carries what the calls left in the context next to the final result, and a
    final REJECT still shows the tags the answer set."""
    from tests.integration.external.conftest import HERE, sha256

    d = tmp_path / "behave"
    d.mkdir(mode=0o700)
    script = d / "behave.py"
    script.write_bytes((HERE / "plugins" / "behave.py").read_bytes())
    cat = d / "catalog.toml"
    cat.write_text('[[plugins.external]]\nname = "behave"\ncommand = ["{python}", "behave.py"]\n'
                   f'sha256 = {{ "behave.py" = "{sha256(script)}" }}\n')
    ok = elemta("plugin", "test", str(cat), "--hook", "rcpt_to", "--mail-from", "a@x.org",
                "--rcpt", "bob@localhost", "--tag", "given=1", "--json")
    assert ok.returncode == 0, ok.stderr
    out = json.loads(ok.stdout)
    assert out["action"] == "continue"
    assert out["collected"] == {"tags": {"behave": "ok"}, "headers": []}
    assert out["tags"] == {"behave": "ok"}
    rej = elemta("plugin", "test", str(cat), "--hook", "rcpt_to", "--mail-from", "a@x.org",
                 "--rcpt", "reject@localhost")
    assert rej.returncode == 0, rej.stderr
    assert "behave rcpt_to: REJECT" in rej.stdout
    assert "550 5.7.1 no thanks" in rej.stdout
    assert "tag:     behave=rejected" in rej.stdout
