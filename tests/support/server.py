"""Run a real `elemta serve` process on loopback ports for integration tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.ports import free_port, wait_port

REPO = Path(__file__).resolve().parents[2]
ELEMTA = [sys.executable, "-m", "elemta_core.cli.main"]


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f'"{k}" = {toml_value(x)}' for k, x in v.items()) + "}"
    raise TypeError(v)


def to_toml(cfg: dict[str, Any]) -> str:
    """A small TOML writer for test configs: {section: {key: value}}; [[arrays]] as lists."""
    out: list[str] = []
    for section, body in cfg.items():
        if isinstance(body, list):
            for item in body:
                out.append(f"[[{section}]]")
                out += [f"{k} = {toml_value(v)}" for k, v in item.items()]
            continue
        out.append(f"[{section}]")
        subs = {k: v for k, v in body.items() if isinstance(v, dict) and k in ("options",)}
        for k, v in body.items():
            if k not in subs:
                out.append(f"{k} = {toml_value(v)}")
        for k, v in subs.items():
            for name, table in v.items():
                out.append(f"[{section}.{k}.{name}]")
                out += [f"{kk} = {toml_value(vv)}" for kk, vv in table.items()]
    return "\n".join(out) + "\n"


def base_config(tmp: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    port = free_port()
    cfg: dict[str, Any] = {
        "server": {"listen": [f"127.0.0.1:{port}"], "hostname": "mx.test",
                   "state_dir": str(tmp / "state"), "workers": 1},
        "metrics": {"listen": ""},
        "plugins": {"enabled": []},
    }
    for name, body in sections.items():
        cfg.setdefault(name, {}).update(body)
    return cfg


@dataclass
class ServerProcess:
    config: dict[str, Any]
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        return int(self.config["server"]["listen"][0].rpartition(":")[2])

    @property
    def state_dir(self) -> Path:
        return Path(self.config["server"]["state_dir"])

    @property
    def config_path(self) -> Path:
        return self.workdir / "elemta.toml"

    @property
    def log_path(self) -> Path:
        return self.workdir / "elemta.log"

    def write_config(self) -> None:
        self.config_path.write_text(to_toml(self.config))

    def start(self, wait: bool = True) -> ServerProcess:
        self.write_config()
        env = {**os.environ, "PYTHONPATH": str(REPO), **self.env}
        self.proc = subprocess.Popen(
            [*ELEMTA, "serve", "-c", str(self.config_path)], cwd=self.workdir, env=env,
            stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT,
        )
        if wait:
            try:
                wait_port(self.port, 20)
                self.wait_admin()
            except TimeoutError:
                raise RuntimeError(f"elemta did not start:\n{self.log()}") from None
        return self

    def wait_admin(self, timeout: float = 10) -> None:
        sock = self.state_dir / "admin.sock"
        deadline = time.monotonic() + timeout
        while not sock.exists():
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"elemta exited {self.proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise TimeoutError("admin socket did not appear")
            time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PYTHONPATH": str(REPO), **self.env}
        return subprocess.run([*ELEMTA, *args, "-c", str(self.config_path)], cwd=self.workdir,
                              env=env, capture_output=True, text=True, check=check, timeout=60)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, timeout: float = 20) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return int(self.proc.returncode or 0)

    def maildir_messages(self, address: str) -> list[Path]:
        local, _, domain = address.rpartition("@")
        new = self.state_dir / "mail" / domain.lower() / local.lower() / "new"
        return sorted(new.iterdir()) if new.exists() else []

    def wait_delivered(self, address: str, count: int = 1, timeout: float = 10) -> list[Path]:
        deadline = time.monotonic() + timeout
        while True:
            msgs = self.maildir_messages(address)
            if len(msgs) >= count or time.monotonic() > deadline:
                return msgs
            time.sleep(0.02)


TESTPLUGINS_PATH = REPO / "tests" / "support" / "plugin_path"


def with_test_plugins_env() -> dict[str, str]:
    """Environment that makes the test plugins (t_first, t_second, t_third) discoverable."""
    return {"PYTHONPATH": f"{REPO}{os.pathsep}{TESTPLUGINS_PATH}"}
