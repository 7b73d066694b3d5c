"""In-process test plugins, installed through a real ``elemta.plugins`` entry point.

This directory goes on PYTHONPATH of the server under test; ``importlib.metadata`` finds the
dist-info next to this module exactly as it finds an installed third-party package.
Behaviour per plugin and hook comes from the ``[testplugins]`` config section:
``behaviors = {"t_first.rcpt_to" = "reject:550:5.7.1:no thanks", ...}``.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from elemta_core.hooks.context import HookContext
from elemta_core.hooks.types import (
    CONTINUE, Action, HeaderChange, HeaderOp, HookPoint, HookResult,
)
from elemta_core.plugins.api import Plugin


@dataclass
class TestPluginsConfig:
    log_file: str = ""
    behaviors: dict[str, str] = field(default_factory=dict)


def parse(spec: str) -> tuple[str, list[str]]:
    kind, _, rest = spec.partition(":")
    return kind, rest.split(":") if rest else []


class _Base(Plugin):
    version = "0.1"
    config_section = "testplugins"
    Config = TestPluginsConfig
    timeout = 0.5

    def hooks(self) -> dict[HookPoint, Any]:
        return {hp: self._make(hp) for hp in HookPoint}

    def _log(self, hp: HookPoint, ctx: HookContext) -> None:
        if self.config.log_file:
            with open(self.config.log_file, "a") as f:
                f.write(json.dumps({"plugin": self.name, "hook": hp.value, "tags": ctx.tags,
                                    "recipient": ctx.recipient, "peer": ctx.peer_ip,
                                    "auth": ctx.auth_user, "helo": ctx.helo,
                                    "event": ctx.event.kind if ctx.event else None,
                                    "detail": ctx.event.detail if ctx.event else None,
                                    "event_plugin": ctx.event.plugin if ctx.event else None,
                                    "t": time.time()}) + "\n")

    def _make(self, hp: HookPoint) -> Any:
        async def fn(ctx: HookContext) -> HookResult:
            self._log(hp, ctx)
            spec = self.config.behaviors.get(f"{self.name}.{hp.value}")
            if spec is None:
                return CONTINUE
            kind, args = parse(spec)
            if kind == "raise":
                raise RuntimeError("test plugin failure")
            if kind == "sleep":
                await asyncio.sleep(float(args[0]))
                return CONTINUE
            if kind == "tag":
                k, _, v = args[0].partition("=")
                return HookResult.with_tags({k: v})
            if kind == "header":
                n, _, v = args[0].partition("=")
                return HookResult(headers=(HeaderChange(HeaderOp.ADD, n, v),))
            if kind == "remove_header":
                return HookResult(headers=(HeaderChange(HeaderOp.REMOVE, args[0]),))
            if kind == "badresult":
                return "not a result"  # type: ignore[return-value]
            action = Action[kind.upper()]
            code = int(args[0]) if args else None
            enhanced = args[1] if len(args) > 1 else None
            text = ":".join(args[2:]) if len(args) > 2 else None
            return HookResult(action, code, enhanced, text, reason=f"{self.name} said {kind}")
        return fn


class First(_Base):
    name = "t_first"
    priority = 10


class Second(_Base):
    name = "t_second"
    priority = 20


class Third(_Base):
    name = "t_third"
    priority = 30
