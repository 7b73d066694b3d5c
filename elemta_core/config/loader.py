"""Load a TOML file (or the embedded defaults) into a validated Config."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elemta_core.config.errors import ConfigError
from elemta_core.config.model import (
    AdminConfig,
    DeliveryConfig,
    LoggingConfig,
    MetricsConfig,
    PluginsConfig,
    ServerConfig,
    SpoolConfig,
)
from elemta_core.config.schema import load_section
from elemta_core.dns.config import DnsConfig
from elemta_core.queue.config import QueueConfig

CORE_SECTIONS: dict[str, type] = {
    "server": ServerConfig,
    "delivery": DeliveryConfig,
    "spool": SpoolConfig,
    "queue": QueueConfig,
    "metrics": MetricsConfig,
    "logging": LoggingConfig,
    "admin": AdminConfig,
    "plugins": PluginsConfig,
    "dns": DnsConfig,
}


@dataclass
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    spool: SpoolConfig = field(default_factory=SpoolConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    plugins: PluginsConfig = field(default_factory=PluginsConfig)
    dns: DnsConfig = field(default_factory=DnsConfig)
    #: Validated plugin sections by name (``[rate_limiter]``, ``[authentication]`` ...).
    sections: dict[str, Any] = field(default_factory=dict)
    #: Raw tables of every top-level section, for plugins that read more than their own.
    raw: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def base_dir(self) -> Path:
        """Relative paths in a config file are relative to that file."""
        return self.path.parent if self.path else Path.cwd()

    def resolve(self, p: str) -> Path:
        path = Path(p).expanduser()
        return path if path.is_absolute() else (self.base_dir / path)

    @property
    def state_dir(self) -> Path:
        return self.resolve(self.server.state_dir).absolute()

    @property
    def admin_socket(self) -> Path:
        return self.resolve(self.admin.socket) if self.admin.socket else self.state_dir / "admin.sock"

    @property
    def maildir_root(self) -> Path:
        d = self.delivery.maildir_root
        return self.resolve(d) if d else self.state_dir / "mail"

    def section(self, name: str) -> Any:
        return self.sections.get(name)


def parse_config(
    data: Mapping[str, Any],
    plugin_sections: Mapping[str, type] | None = None,
    path: Path | None = None,
) -> Config:
    """Validate a parsed TOML document. ``plugin_sections`` maps section name to dataclass."""
    file = str(path) if path else None
    plugin_sections = plugin_sections or {}
    kwargs: dict[str, Any] = {}
    sections: dict[str, Any] = {}
    try:
        for name, value in data.items():
            if name in CORE_SECTIONS:
                if not isinstance(value, dict):
                    raise ConfigError(name, "must be a table", f"write [{name}] on its own line")
                kwargs[name] = load_section(CORE_SECTIONS[name], value, name)
            elif name in plugin_sections:
                if not isinstance(value, dict):
                    raise ConfigError(name, "must be a table", f"write [{name}] on its own line")
                sections[name] = load_section(plugin_sections[name], value, name)
            else:
                known = sorted([*CORE_SECTIONS, *plugin_sections])
                raise ConfigError(name, "unknown section",
                                  f"remove it, or use one of: {', '.join(known)}")
        for name, cls in plugin_sections.items():
            if name not in sections:
                sections[name] = load_section(cls, {}, name)
    except ConfigError as e:
        raise e.in_file(file) if file else e
    return Config(**kwargs, sections=sections, raw=dict(data), path=path)


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError("(file)", "does not exist", "check the path given to -c",
                          str(path)) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("(syntax)", str(e), "fix the TOML syntax at that line", str(path)) from None
    except OSError as e:
        raise ConfigError("(file)", e.strerror or str(e), "check the file's permissions",
                          str(path)) from None


def load_config(path: str | Path | None, plugin_sections: Mapping[str, type] | None = None) -> Config:
    """Load ``path``, or the embedded defaults when ``path`` is None."""
    if path is None:
        return parse_config({}, plugin_sections)
    p = Path(path).absolute()
    return parse_config(read_toml(p), plugin_sections, p)
