"""The external plugin host as the plugin manager sees it: a PluginProvider whose handles
start supervised plugin processes and give the pipeline one link per described hook.

Which plugins run (see :mod:`catalog`): every ``[[plugins.external]]`` entry of the config
and of its ``[plugins] include`` files (unless ``enabled = false``), plus
``<[plugins] directory>/<name>/catalog.toml`` for names in ``[plugins] enabled``.

A plugin that cannot start when the server starts (refused files, a handshake fault, a
refused configuration) stops the server with a ConfigError naming it: running without a
configured policy would be silently fail-open. Later failures are the supervisor's: the
plugin's calls get its failure policy until it is back.

Reloads (SIGHUP, ``config.reload``, hot reload) build a new plugin manager while the old one
still serves. One provider lives as long as the daemon, so an external plugin whose catalog
entry is unchanged (same command, pins, config, limits …) is *shared* by the old and the new
manager instead of restarted: its pinned files are re-verified, and a file that no longer
matches its pin refuses the whole reload (the plugin keeps running the code it was started
with). A changed entry gets a fresh process, started before the old one is drained.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from elemta_core.config.errors import ConfigError
from elemta_core.config.loader import Config
from elemta_core.external import catalog
from elemta_core.external.catalog import CatalogEntry
from elemta_core.external.convert import HOOK_TO_PB, PB_TO_HOOK, POLICY_FROM_PB
from elemta_core.external.errors import ExternalPluginError, RefusedError
from elemta_core.external.security import sweep_socket_dirs, verify
from elemta_core.external.supervisor import State, Supervisor
from elemta_core.hooks.context import HookContext
from elemta_core.hooks.pipeline import Link, make_link
from elemta_core.hooks.types import FailurePolicy, HookPoint, HookResult
from elemta_core.plugins.api import PluginKind, PluginServices
from elemta_core.plugins.manager import PluginHandle

log = logging.getLogger("elemta.external")

DEFAULT_PRIORITY = 100


class ExternalHandle:
    """One external plugin: its supervisor and, once it has described itself, its links."""

    kind = PluginKind.EXTERNAL

    def __init__(self, entry: CatalogEntry, services: PluginServices,
                 on_restart: Callable[[], None] | None = None,
                 on_lifecycle: Callable[[ExternalHandle, bool], None] | None = None) -> None:
        self.name = entry.name
        self.entry = entry
        self.fingerprint = fingerprint(entry)
        self.supervisor = Supervisor(entry, services.hostname, services.state_dir, on_restart)
        self._links: list[Link] = []
        self._users = 0  # plugin managers holding this handle (two during a reload)
        self._on_lifecycle = on_lifecycle

    # -- the pipeline side -------------------------------------------------------------------

    def _policy(self) -> FailurePolicy:
        if self.entry.failure_policy is not None:
            return self.entry.failure_policy
        d = self.supervisor.description
        return POLICY_FROM_PB.get(d.failure_policy, FailurePolicy.TEMPFAIL) if d else \
            FailurePolicy.TEMPFAIL

    def _priority(self, hook_priority: int = 0) -> int:
        if self.entry.priority is not None:
            return self.entry.priority
        d = self.supervisor.description
        return hook_priority or (d.priority if d and d.priority else DEFAULT_PRIORITY)

    def _fn(self, hook: int) -> Callable[[HookContext], Any]:
        call = self.supervisor.call

        async def external_hook(ctx: HookContext) -> HookResult:
            return await call(hook, ctx)

        return external_hook

    def _build_links(self) -> list[Link]:
        d = self.supervisor.description
        if d is None:
            return []
        links: list[Link] = []
        seen: set[HookPoint] = set()
        for reg in d.hooks:
            hp = PB_TO_HOOK.get(reg.hook)
            if hp is None or hp in seen:
                log.warning("plugin %s registers unknown or duplicate hook %d; ignored",
                            self.name, reg.hook)
                continue
            seen.add(hp)
            links.append(make_link(self.name, hp, self._fn(HOOK_TO_PB[hp]),
                                   self._priority(reg.priority),
                                   self.entry.hooks_timeout_ms / 1000, self._policy()))
        return links

    def links(self) -> list[Link]:
        return self._links

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._users:
            await self._reverify()
            self._users += 1
            return
        try:
            await self.supervisor.start()
        except ExternalPluginError as e:
            what = "refused to launch" if isinstance(e, RefusedError) else "failed to start"
            raise ConfigError(f"plugins.external.{self.name}", f"{what}: {e}",
                              "fix the plugin or its catalog entry, or disable it",
                              self.entry.source or None) from None
        self._users = 1
        self._links = self._build_links()
        if not self._links:
            log.warning("plugin %s registers no hooks", self.name)
        if self._on_lifecycle is not None:
            self._on_lifecycle(self, True)

    async def _reverify(self) -> None:
        """A reload keeps this running plugin: its files must still match their pins."""
        try:
            await asyncio.get_running_loop().run_in_executor(None, verify, self.entry)
        except RefusedError as e:
            self.supervisor.last_error = f"reload refused: {e}"
            raise ConfigError(f"plugins.external.{self.name}", f"refused at reload: {e}",
                              "restore the file, or pin the change (elemta plugin pin); the "
                              "plugin keeps running the version it was started with",
                              self.entry.source or None) from None
        if self.supervisor.last_error.startswith("reload refused:"):
            self.supervisor.last_error = ""

    async def stop(self) -> None:
        self._users -= 1
        if self._users > 0:
            return
        self._users = 0
        if self._on_lifecycle is not None:
            self._on_lifecycle(self, False)
        await self.supervisor.stop()

    def info(self) -> dict[str, Any]:
        s = self.supervisor
        d = s.description
        calls = sum(lk.stats.count for lk in self._links)
        total = sum(lk.stats.total for lk in self._links)
        failures = sum(lk.stats.failures + lk.stats.timeouts for lk in self._links)
        client = s.client
        return {
            "name": self.name,
            "kind": self.kind,
            "version": d.version if d else "",
            "description": d.description if d else "",
            "hooks": [lk.hook.value for lk in self._links],
            "priority": self._priority(),
            "failure_policy": self._policy().value,
            "timeout_ms": self.entry.hooks_timeout_ms,
            "state": s.state.value,
            "pid": s.pid,
            "restarts": s.restarts,
            "last_error": s.last_error,
            "calls": calls,
            "failures": failures,
            "avg_latency_us": round(total / calls * 1e6, 1) if calls else None,
            "mode": ("stream" if client.streaming else "unary") if client else self.entry.mode,
            "mtls": bool(self.entry.mtls),
            "command": self.entry.command,
            "source": self.entry.source,
        }


def fingerprint(entry: CatalogEntry) -> str:
    """Everything about an entry that a running plugin depends on (pins included)."""
    return repr((sorted(dataclasses.asdict(entry).items()), str(entry.base_dir)))


class ExternalProvider:
    """Plugged into the PluginManager by the daemon: ``ExternalProvider(metrics)``; the daemon
    keeps one for its lifetime so reloads can share unchanged plugins."""

    def __init__(self, metrics: Any = None) -> None:
        self.metrics = metrics
        self._swept = False
        self._live: list[ExternalHandle] = []  # started and not yet stopped by every user

    def _lifecycle(self, handle: ExternalHandle, started: bool) -> None:
        if started:
            self._live.append(handle)
        elif handle in self._live:
            self._live.remove(handle)

    def _running(self, entry: CatalogEntry) -> ExternalHandle | None:
        fp = fingerprint(entry)
        for h in self._live:  # a disabled or refused one gets a fresh start
            if h.name == entry.name and h.fingerprint == fp and \
                    h.supervisor.state not in (State.DISABLED, State.REFUSED, State.STOPPED):
                return h
        return None

    def claims(self, name: str, config: Config) -> bool:
        return catalog.find(config, name) is not None

    def handles(self, config: Config, services: PluginServices,
                names: list[str]) -> list[PluginHandle]:
        out: list[PluginHandle] = []
        entries = catalog.enabled_entries(config, names)
        if entries and not self._swept:
            self._swept = True
            sweep_socket_dirs()  # left behind by a server that was SIGKILLed
        for entry in entries:
            if entry.mtls is None:
                entry.mtls = config.plugins.mtls
            h = self._running(entry)
            if h is None:
                h = ExternalHandle(entry, services, self._restart_counter(entry.name),
                                   self._lifecycle)
            out.append(h)
        return out

    def _restart_counter(self, name: str) -> Callable[[], None] | None:
        counter = getattr(self.metrics, "plugin_restarts", None)
        if counter is None:
            return None
        child = counter.labels(name)
        return lambda: child.inc()


__all__ = ["ExternalHandle", "ExternalProvider", "State"]
