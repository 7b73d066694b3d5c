"""Every handshake fault of a real child process gets its own clear error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from elemta_core.config.errors import ConfigError
from elemta_core.external.catalog import parse_entry
from elemta_core.external.provider import ExternalHandle
from elemta_core.plugins.api import PluginServices
from tests.integration.external.conftest import EXAMPLES, HERE, pinned_entry


def handle(tmp: Path, script: Path, *args: str, **kw: object) -> ExternalHandle:
    data = pinned_entry(tmp, script, "fault", args, start_timeout_ms=1500, **kw)
    entry = parse_entry(data, "plugins.external[0]", tmp, "")
    return ExternalHandle(entry, PluginServices(hostname="mx.test", state_dir=tmp / "state"))


@pytest.mark.parametrize(("mode", "message"), [
    ("silent", "no handshake line on stdout within 1.5s"),
    ("exit", "exited with code 4 before the handshake; stderr: ERROR cannot open my database"),
    ("garbage", "stdout is not a handshake line: 'hello, I am a plugin'"),
    ("version", ("hook protocol mismatch: the plugin speaks version 7, this server speaks "
                 "version 1")),
    ("core", "go-plugin core protocol mismatch: the plugin speaks version 2"),
    ("netrpc", "protocol 'netrpc' is not supported"),
    ("nosocket", "missing.sock named in the handshake does not exist"),
])
async def test_handshake_faults(tmp_path: Path, mode: str, message: str) -> None:
    h = handle(tmp_path, HERE / "plugins" / "handshake.py", mode)
    with pytest.raises(ConfigError) as exc:
        await h.start()
    assert "plugins.external.fault: failed to start" in str(exc.value)
    assert message in str(exc.value)
    assert h.supervisor.pid is None
    await h.stop()


async def test_environment_is_scrubbed_and_carries_the_cookie(tmp_path: Path,
                                                              monkeypatch) -> None:
    monkeypatch.setenv("SECRET_TOKEN", "hunter2")
    h = handle(tmp_path, HERE / "plugins" / "handshake.py", "cookie", env={"MY_SETTING": "1"})
    with pytest.raises(ConfigError) as exc:
        await h.start()
    err = str(exc.value)
    assert "exited with code 0" in err and "cookie ok" in err
    assert "SECRET_TOKEN" not in err and "'MY_SETTING'" in err
    assert "'PLUGIN_PROTOCOL_VERSIONS'" in err and "'PLUGIN_UNIX_SOCKET_DIR'" in err


async def test_configure_refusal_is_a_clear_error(tmp_path: Path) -> None:
    h = handle(tmp_path, EXAMPLES / "python_filter" / "plugin.py",
               config={"reject_subjects": ["(unclosed"]})
    with pytest.raises(ConfigError, match="refused its configuration: error: missing \\), "
                                          "unterminated subpattern"):
        await h.start()


async def test_unpinned_program_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "p"
    d.mkdir(mode=0o700)
    (d / "plugin.py").write_text("print('hi')\n")
    (d / "plugin.py").chmod(0o600)
    entry = parse_entry({"name": "unpinned", "command": ["{python}", "plugin.py"],
                         "sha256": {"other.py": "0" * 64}}, "x", d, "")
    h = ExternalHandle(entry, PluginServices(hostname="mx.test", state_dir=tmp_path / "s"))
    with pytest.raises(ConfigError, match="refused to launch: .*plugin.py is run but not pinned"):
        await h.start()
    assert h.supervisor.state.value == "refused"


def test_sdk_plugin_run_by_hand_explains_itself() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELEMTA_PLUGIN")}
    r = subprocess.run([sys.executable, str(EXAMPLES / "greylist" / "plugin.py")], env=env,
                       capture_output=True, text=True, timeout=30, check=False)
    assert r.returncode == 1 and r.stdout == ""
    assert "is an Elemta plugin. It is not meant to be executed directly" in r.stderr


def test_sdk_refuses_a_server_without_its_protocol_version() -> None:
    from elemta_core.external import constants as C

    env = {**os.environ, C.MAGIC_COOKIE_KEY: C.MAGIC_COOKIE_VALUE,
           C.ENV_PROTOCOL_VERSIONS: "2,3"}
    r = subprocess.run([sys.executable, str(EXAMPLES / "greylist" / "plugin.py")], env=env,
                       capture_output=True, text=True, timeout=30, check=False)
    assert r.returncode == 1
    assert "protocol version mismatch: the server speaks 2,3, this plugin speaks 1" in r.stderr
