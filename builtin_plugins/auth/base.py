"""What every ``[authentication]`` plugin shares: the section, the worker-thread runtime and
the authserv-id, so each check module holds only its check."""

from __future__ import annotations

from builtin_plugins.auth.config import AuthConfig
from builtin_plugins.auth.runtime import AuthRuntime
from elemta_core.hooks.types import FailurePolicy
from elemta_core.plugins.api import Plugin, PluginServices


class AuthPlugin(Plugin):
    config_section = "authentication"
    Config = AuthConfig
    config: AuthConfig
    #: A check that cannot finish (DNS trouble) reports temperror itself; a crash fails open.
    failure_policy = FailurePolicy.CONTINUE
    timeout = 30.0

    def __init__(self, config: AuthConfig | None, services: PluginServices) -> None:
        super().__init__(config or AuthConfig(), services)
        self.authserv_id = self.config.authserv_id or services.hostname
        self.runtime = AuthRuntime(services, self.config.workers)

    async def start(self) -> None:
        await self.runtime.start()

    async def stop(self) -> None:
        await self.runtime.stop()
