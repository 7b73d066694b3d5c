"""The in-process plugin API: what a built-in (or third-party Python) plugin implements.

A plugin is a class with hook methods named ``on_<hook>`` (``on_rcpt_to``, ``on_message`` …),
sync or async, taking a :class:`HookContext` and returning a :class:`HookResult`. It is
published through the ``elemta.plugins`` entry-point group::

    [project.entry-points."elemta.plugins"]
    my_check = "my_pkg.plugin:MyCheck"
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from elemta_core.hooks.context import HookContext, SecurityEvent
from elemta_core.hooks.types import FailurePolicy, HookPoint, HookResult

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

HookFn = Callable[[HookContext], HookResult | Awaitable[HookResult]]
AdminHandler = Callable[[dict[str, Any]], Awaitable[Any]]


class PluginKind:
    BUILTIN = "builtin"
    EXTERNAL = "external"


@dataclass
class PluginServices:
    """What the core lends a plugin: everything a plugin may touch outside itself."""

    hostname: str
    state_dir: Path
    registry: CollectorRegistry | None = None
    resolver: Any = None  # elemta_core.dns resolver, when configured
    emit: Callable[[HookPoint, HookContext, SecurityEvent], None] | None = None
    admin_commands: dict[str, AdminHandler] = field(default_factory=dict)
    local_domains: tuple[str, ...] = ()
    config: Any = None  # the whole Config, read-only by convention

    def security_event(self, hook: HookPoint, ctx: HookContext, event: SecurityEvent) -> None:
        """Tell the security observers (rate_limited, auth_failed, policy_violation …)."""
        if self.emit is not None:
            self.emit(hook, ctx, event)

    def register_admin_command(self, name: str, handler: AdminHandler) -> None:
        """Expose ``handler`` on the admin socket as ``name`` (e.g. ``ratelimit.show``)."""
        self.admin_commands[name] = handler


@dataclass(frozen=True)
class PluginInfo:
    name: str
    kind: str
    version: str
    hooks: tuple[str, ...]
    priority: int
    failure_policy: str
    timeout_ms: int
    description: str = ""


class Plugin:
    """Base class for in-process plugins."""

    name: ClassVar[str] = ""
    version: ClassVar[str] = "0.0.0"
    description: ClassVar[str] = ""
    #: Lower runs first (as in Haraka). Built-ins use 10 (limits) … 50 (auth) … 80 (scanning).
    priority: ClassVar[int] = 100
    failure_policy: ClassVar[FailurePolicy] = FailurePolicy.TEMPFAIL
    timeout: ClassVar[float] = 5.0
    #: The top-level TOML table this plugin reads (several plugins may share one).
    config_section: ClassVar[str | None] = None
    #: A dataclass describing that table; validated strictly at load time.
    Config: ClassVar[type | None] = None

    def __init__(self, config: Any, services: PluginServices) -> None:
        self.config = config
        self.services = services
        self.log = logging.getLogger(f"elemta.plugin.{self.name}")

    async def start(self) -> None:
        """Open connections, load keys. A failure here is a start-up error."""

    async def stop(self) -> None:
        """Release what ``start`` opened."""

    def hooks(self) -> dict[HookPoint, HookFn]:
        """Bound hook methods by point; by default every ``on_<hook>`` method."""
        out: dict[HookPoint, HookFn] = {}
        for hp in HookPoint:
            fn = getattr(self, f"on_{hp.value}", None)
            if fn is not None:
                out[hp] = fn
        return out

    def hook_priorities(self) -> dict[HookPoint, int]:
        """Per-hook priorities, where a plugin needs to run early on one hook only."""
        return {}
