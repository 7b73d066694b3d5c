"""Finds, configures, starts and describes plugins, and builds the hook pipeline from them.

Built-ins are found exactly like a third party's in-process plugins: through the
``elemta.plugins`` entry-point group. External plugins (subprocesses over gRPC) come from
providers registered with :meth:`PluginManager.add_provider`; the core's external plugin host
is one of them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol

from elemta_core.config.errors import ConfigError
from elemta_core.config.loader import Config
from elemta_core.hooks.pipeline import Link, Pipeline, make_link
from elemta_core.hooks.types import FailurePolicy, HookPoint
from elemta_core.plugins.api import Plugin, PluginKind, PluginServices

log = logging.getLogger("elemta.plugins")

ENTRY_POINT_GROUP = "elemta.plugins"
#: Enabled when the config does not say: the DESIGN.md defaults, where installed.
DEFAULT_ENABLED: tuple[str, ...] = ("rate_limiter", "spf", "dkim", "dmarc")


class PluginState:
    STOPPED = "stopped"
    STARTING = "starting"
    READY = "ready"
    BACKOFF = "backoff"
    DISABLED = "disabled"
    FAILED = "failed"
    REFUSED = "refused"


class PluginHandle(Protocol):
    """What the manager needs of any plugin, built-in or external."""

    name: str
    kind: str

    def links(self) -> list[Link]: ...

    def info(self) -> dict[str, Any]: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class PluginProvider(Protocol):
    """Supplies plugins that are not entry points (e.g. the external plugin host)."""

    def claims(self, name: str, config: Config) -> bool: ...

    def handles(self, config: Config, services: PluginServices,
                names: list[str]) -> list[PluginHandle]: ...


def discover() -> dict[str, type[Plugin]]:
    """Every installed in-process plugin class, by name. A duplicate name is an error."""
    found: dict[str, type[Plugin]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in found:
            raise ConfigError(f"plugins.{ep.name}", "two installed packages publish this plugin",
                              "uninstall one of them")
        try:
            cls = ep.load()
        except Exception as e:  # noqa: BLE001 - a broken third-party package must not stop the server
            log.error("cannot load plugin entry point %s (%s): %s", ep.name, ep.value, e)
            continue
        if not (isinstance(cls, type) and issubclass(cls, Plugin)):
            log.error("entry point %s (%s) is not an elemta Plugin class", ep.name, ep.value)
            continue
        found[ep.name] = cls
    return found


def plugin_sections(classes: Iterable[type[Plugin]]) -> dict[str, type]:
    """Config section name -> its dataclass, for the config loader."""
    out: dict[str, type] = {}
    for cls in classes:
        if cls.config_section and cls.Config is not None:
            prev = out.setdefault(cls.config_section, cls.Config)
            if prev is not cls.Config:
                log.error("plugins %s share [%s] with a different schema; the first one wins",
                          cls.name, cls.config_section)
    return out


@dataclass
class BuiltinHandle:
    """An in-process plugin instance with the operator's overrides applied."""

    plugin: Plugin
    priority: int
    timeout: float
    policy: FailurePolicy
    name: str = ""
    kind: str = PluginKind.BUILTIN
    state: str = PluginState.STOPPED
    last_error: str = ""
    _links: list[Link] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.name = self.plugin.name
        pri = self.plugin.hook_priorities()
        self._links = [
            make_link(self.name, hp, fn, pri.get(hp, self.priority), self.timeout, self.policy)
            for hp, fn in self.plugin.hooks().items()
        ]

    def links(self) -> list[Link]:
        return self._links if self.state == PluginState.READY else []

    async def start(self) -> None:
        self.state = PluginState.STARTING
        try:
            await self.plugin.start()
        except Exception as e:
            self.state = PluginState.FAILED
            self.last_error = f"{type(e).__name__}: {e}"
            raise
        self.state = PluginState.READY

    async def stop(self) -> None:
        try:
            await self.plugin.stop()
        except Exception as e:  # noqa: BLE001 - deliberate: relayed or reported, never swallowed
            log.warning("plugin %s stop failed: %s", self.name, e)
        self.state = PluginState.STOPPED

    def info(self) -> dict[str, Any]:
        calls = sum(lk.stats.count for lk in self._links)
        total = sum(lk.stats.total for lk in self._links)
        return {
            "name": self.name,
            "kind": self.kind,
            "version": self.plugin.version,
            "description": self.plugin.description,
            "hooks": [lk.hook.value for lk in self._links],
            "priority": self.priority,
            "failure_policy": self.policy.value,
            "timeout_ms": int(self.timeout * 1000),
            "state": self.state,
            "pid": None,
            "restarts": 0,
            "last_error": self.last_error,
            "calls": calls,
            "avg_latency_us": round(total / calls * 1e6, 1) if calls else None,
        }


def stopped_info(cls: type[Plugin], config: Config) -> dict[str, Any]:
    """How a configured plugin is described when no daemon is running."""
    opts = config.plugins.options.get(cls.name)
    return {
        "name": cls.name,
        "kind": PluginKind.BUILTIN,
        "version": cls.version,
        "description": cls.description,
        "hooks": [hp.value for hp in HookPoint if hasattr(cls, f"on_{hp.value}")],
        "priority": opts.priority if opts and opts.priority is not None else cls.priority,
        "failure_policy": (opts.failure_policy if opts and opts.failure_policy
                           else cls.failure_policy).value,
        "timeout_ms": opts.timeout_ms if opts and opts.timeout_ms else int(cls.timeout * 1000),
        "state": PluginState.STOPPED,
        "pid": None,
        "restarts": 0,
        "last_error": "",
    }


class PluginManager:
    def __init__(self, config: Config, services: PluginServices,
                 classes: dict[str, type[Plugin]] | None = None) -> None:
        self.config = config
        self.services = services
        self.classes = classes if classes is not None else discover()
        self.providers: list[PluginProvider] = []
        self.handles: list[PluginHandle] = []

    def add_provider(self, provider: PluginProvider) -> None:
        self.providers.append(provider)

    def enabled_names(self) -> list[str]:
        enabled = self.config.plugins.enabled
        if enabled is None:
            return [n for n in DEFAULT_ENABLED if n in self.classes]
        return list(dict.fromkeys(enabled))

    def _builtin(self, name: str) -> BuiltinHandle:
        cls = self.classes[name]
        opts = self.config.plugins.options.get(name)
        section = self.config.section(cls.config_section) if cls.config_section else None
        plugin = cls(section, self.services)
        return BuiltinHandle(
            plugin,
            priority=opts.priority if opts and opts.priority is not None else cls.priority,
            timeout=(opts.timeout_ms / 1000) if opts and opts.timeout_ms else cls.timeout,
            policy=opts.failure_policy if opts and opts.failure_policy else cls.failure_policy,
        )

    def build(self) -> list[PluginHandle]:
        """Instantiate every enabled plugin (not started). Unknown names are ConfigErrors."""
        handles: list[PluginHandle] = []
        external: list[str] = []
        for name in self.enabled_names():
            if name in self.classes:
                handles.append(self._builtin(name))
            elif any(p.claims(name, self.config) for p in self.providers):
                external.append(name)
            else:
                avail = ", ".join(sorted(self.classes)) or "none installed"
                raise ConfigError(
                    "plugins.enabled", f"no plugin named {name!r}",
                    f"install it, add a [[plugins.external]] entry or "
                    f"{Path(self.config.plugins.directory) / name / 'catalog.toml'}, "
                    f"or use one of: {avail}",
                    str(self.config.path) if self.config.path else None)
        for p in self.providers:
            handles.extend(p.handles(self.config, self.services, external))
        return handles

    async def start(self) -> None:
        self.handles = self.build()
        started: list[PluginHandle] = []
        for h in self.handles:
            t0 = time.perf_counter()
            try:
                await h.start()
            except Exception:
                for s in reversed(started):
                    await s.stop()
                raise
            started.append(h)
            log.info("plugin %s (%s) started in %.1f ms", h.name, h.kind,
                     (time.perf_counter() - t0) * 1000)

    async def stop(self) -> None:
        for h in reversed(self.handles):
            await h.stop()

    def pipeline(self, on_failure: Any = None) -> Pipeline:
        return Pipeline([lk for h in self.handles for lk in h.links()], on_failure)

    def describe(self) -> list[dict[str, Any]]:
        return [h.info() for h in self.handles]
