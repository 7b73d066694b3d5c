"""Catalog entries: where external plugins are declared, validated strictly.

Three places declare an external plugin, all with the same ``[[plugins.external]]`` table:

1. the config file itself (paths relative to the config file);
2. each file in ``[plugins] include`` (paths relative to that catalog file);
3. ``<[plugins] directory>/<name>/catalog.toml`` for a name in ``[plugins] enabled`` (the
   seed's meaning of ``directory``/``enabled``).

Entries of (1) and (2) are enabled by being there (set ``enabled = false`` to keep one
declared but off); an entry of (3) only when ``enabled`` names it. A name declared twice is
an error. ``"{python}"`` in ``command`` is the server's own interpreter, so a Python plugin
runs with the SDK installed next to the server.
"""

from __future__ import annotations

import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elemta_core.config.errors import ConfigError
from elemta_core.config.loader import Config
from elemta_core.config.schema import check_positive, load_section
from elemta_core.hooks.types import FailurePolicy

PYTHON_TOKEN = "{python}"
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass
class Limits:
    """Resource limits applied to the child (setrlimit); 0 = unlimited."""

    memory_mb: int = 4096  # address space (RLIMIT_AS); gRPC reserves a lot of it
    max_files: int = 1024  # RLIMIT_NOFILE
    cpu_seconds: int = 0  # RLIMIT_CPU, total CPU time: the kernel kills a plugin that spins

    def validate(self) -> None:
        for k in ("memory_mb", "max_files", "cpu_seconds"):
            check_positive(k, getattr(self, k), allow_zero=True)


@dataclass
class CatalogEntry:
    """One ``[[plugins.external]]`` table."""

    name: str
    command: list[str]
    sha256: dict[str, str] = field(default_factory=dict)
    hooks_timeout_ms: int = 500
    failure_policy: FailurePolicy | None = None  # None: what the plugin's Describe says
    priority: int | None = None  # None: what the plugin's Describe says
    mode: str = "auto"  # auto (stream if the plugin streams) | stream | unary
    config: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    enabled: bool = True
    start_timeout_ms: int = 10000
    health_interval_ms: int = 5000
    shutdown_grace_ms: int = 2000
    max_restarts: int = 5
    restart_window_s: float = 60.0
    user: str = ""
    #: AutoMTLS on the plugin socket (see :mod:`mtls`); None: ``[plugins] mtls``.
    mtls: bool | None = None
    limits: Limits = field(default_factory=Limits)
    #: Where relative paths are resolved (the declaring file's directory) and that file.
    base_dir: Path = field(default=Path("."), init=False)
    source: str = field(default="", init=False)

    def validate(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ConfigError("name", f"{self.name!r} is not a plugin name",
                              "use lower-case letters, digits, '_', '.' or '-' (max 64)")
        if not self.command or not all(self.command):
            raise ConfigError("command", "is empty",
                              'give the program and its arguments, e.g. ["{python}", "plugin.py"]')
        if not self.sha256:
            raise ConfigError("sha256", "is empty: every file that runs must be pinned",
                              "add { \"plugin.py\" = \"<sha256>\" } (make checksums prints them)")
        for path, digest in self.sha256.items():
            if not _SHA256.fullmatch(digest):
                raise ConfigError(f"sha256.{path}", f"{digest!r} is not a SHA-256 hex digest",
                                  f"use the output of sha256sum {path}")
        for k in ("hooks_timeout_ms", "start_timeout_ms", "health_interval_ms"):
            check_positive(k, getattr(self, k))
        check_positive("shutdown_grace_ms", self.shutdown_grace_ms, allow_zero=True)
        check_positive("max_restarts", self.max_restarts, allow_zero=True)
        check_positive("restart_window_s", self.restart_window_s)
        if self.mode not in ("auto", "stream", "unary"):
            raise ConfigError("mode", f"{self.mode!r} is not allowed", "use auto, stream or unary")

    def resolve(self, p: str) -> Path:
        path = Path(p).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    def argv(self) -> list[str]:
        """The command with ``{python}`` expanded and relative program paths resolved."""
        out: list[str] = []
        for i, arg in enumerate(self.command):
            if arg == PYTHON_TOKEN:
                out.append(sys.executable)
            elif (i == 0 and "/" in arg) or (arg in self.sha256):
                out.append(str(self.resolve(arg)))
            else:
                out.append(arg)
        return out

    def pinned(self) -> dict[Path, str]:
        return {self.resolve(p): d for p, d in self.sha256.items()}


def parse_entry(data: Any, key: str, base_dir: Path, source: str) -> CatalogEntry:
    if not isinstance(data, dict):
        raise ConfigError(key, "must be a table", "write [[plugins.external]] with its keys",
                          source or None)
    try:
        entry = load_section(CatalogEntry, data, key)
    except ConfigError as e:
        raise e.in_file(source) if source else e
    entry.base_dir = base_dir
    entry.source = source
    return entry


def _entries_in(data: Any, file: Path) -> list[Any]:
    plugins = data.get("plugins", {}) if isinstance(data, dict) else {}
    extra = set(data) - {"plugins"} if isinstance(data, dict) else set()
    if extra or not isinstance(plugins, dict) or set(plugins) - {"external"}:
        raise ConfigError("(catalog)", "a catalog file holds only [[plugins.external]] tables",
                          "move other settings to the main config", str(file))
    entries = plugins.get("external", [])
    if not isinstance(entries, list) or not entries:
        raise ConfigError("plugins.external", "no [[plugins.external]] entry",
                          "add one [[plugins.external]] table", str(file))
    return entries


def read_catalog(file: Path) -> list[CatalogEntry]:
    """Every entry of one catalog file (paths in it are relative to the file)."""
    try:
        with open(file, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError("(file)", "does not exist", "check the path", str(file)) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("(syntax)", str(e), "fix the TOML syntax", str(file)) from None
    except OSError as e:
        raise ConfigError("(file)", e.strerror or str(e), "check permissions", str(file)) from None
    return [parse_entry(d, f"plugins.external[{i}]", file.parent.absolute(), str(file))
            for i, d in enumerate(_entries_in(data, file))]


def declared(config: Config) -> dict[str, CatalogEntry]:
    """Entries from the config file and its includes, by name (a duplicate is an error)."""
    cached = getattr(config, "_external_catalog", None)
    if cached is not None:
        return dict(cached)
    source = str(config.path) if config.path else ""
    out: dict[str, CatalogEntry] = {}
    entries: list[CatalogEntry] = [
        parse_entry(d, f"plugins.external[{i}]", config.base_dir.absolute(), source)
        for i, d in enumerate(config.plugins.external)
    ]
    for i, inc in enumerate(config.plugins.include):
        if not isinstance(inc, str) or not inc:
            raise ConfigError(f"plugins.include[{i}]", "must be a path to a catalog.toml",
                              'write include = ["external-plugins/greylist/catalog.toml"]',
                              source or None)
        entries.extend(read_catalog(config.resolve(inc).absolute()))
    for e in entries:
        if e.name in out:
            raise ConfigError(f"plugins.external.{e.name}",
                              f"declared twice ({out[e.name].source or 'config'} and "
                              f"{e.source or 'config'})", "keep one entry", source or None)
        out[e.name] = e
    object.__setattr__(config, "_external_catalog", out)
    return dict(out)


def in_directory(config: Config, name: str) -> CatalogEntry | None:
    """``<[plugins] directory>/<name>/catalog.toml``, when it exists and declares ``name``."""
    file = config.resolve(config.plugins.directory) / name / "catalog.toml"
    if not file.is_file():
        return None
    for e in read_catalog(file.absolute()):
        if e.name == name:
            return e
    raise ConfigError("plugins.external", f"{file} does not declare a plugin named {name!r}",
                      f'set name = "{name}" in it', str(file))


def find(config: Config, name: str) -> CatalogEntry | None:
    return declared(config).get(name) or in_directory(config, name)


def enabled_entries(config: Config, names: list[str]) -> list[CatalogEntry]:
    """Declared entries that are on, then directory plugins named in ``enabled``."""
    decl = declared(config)
    out = [e for e in decl.values() if e.enabled]
    for name in names:
        if name in decl:
            if not decl[name].enabled:
                out.append(decl[name])  # named in [plugins] enabled: that wins
            continue
        e = in_directory(config, name)
        if e is not None:
            out.append(e)
    return out
