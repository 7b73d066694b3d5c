"""A plugin: its name, its hook handlers and its configure callback.

    plugin = Plugin("greylist", version="1.0")

    @plugin.hook("rcpt_to")
    async def check(ctx: Context) -> Result | None: ...

    plugin.serve()

Sync handlers run on the event loop (they must be quick); pass ``blocking=True`` for a sync
handler that does I/O, and it runs in a thread instead.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from elemta_plugin._proto.elemta.plugin.v1 import plugin_pb2 as pb
from elemta_plugin.constants import APP_PROTOCOL_VERSION
from elemta_plugin.types import HOOK_NAMES, HOOKS, Context, FailurePolicy, Result

Handler = Callable[[Context], Result | None | Awaitable[Result | None]]
ConfigureFn = Callable[[dict[str, Any]], None | Awaitable[None]]

log = logging.getLogger("elemta_plugin")

_CONTINUE = pb.Result()


@dataclass(frozen=True, slots=True)
class Registration:
    hook: str
    fn: Handler
    priority: int
    is_async: bool
    blocking: bool


class Plugin:
    def __init__(self, name: str, version: str = "0.0.0", description: str = "",
                 priority: int = 100, failure_policy: str = "tempfail",
                 streaming: bool = True) -> None:
        self.name = name
        self.version = version
        self.description = description
        self.priority = priority
        self.failure_policy = FailurePolicy[failure_policy.upper()]
        self.streaming = streaming
        self.handlers: dict[int, Registration] = {}
        self._configure: ConfigureFn | None = None
        #: Set by Configure: the catalog entry's ``config`` table and the server's details.
        self.config: dict[str, Any] = {}
        self.state_dir = ""
        self.server_hostname = ""

    def hook(self, name: str, *, priority: int = 0,
             blocking: bool = False) -> Callable[[Handler], Handler]:
        """Register a handler for hook ``name`` (``rcpt_to``, ``message`` …)."""
        if name not in HOOKS:
            raise ValueError(f"unknown hook {name!r}; hooks are: {', '.join(HOOKS)}")

        def register(fn: Handler) -> Handler:
            value = HOOKS[name]
            if value in self.handlers:
                raise ValueError(f"hook {name!r} already has a handler")
            self.handlers[value] = Registration(name, fn, priority,
                                                inspect.iscoroutinefunction(fn), blocking)
            return fn

        return register

    def configure(self, fn: ConfigureFn) -> ConfigureFn:
        """Register the callback that receives the catalog entry's ``config`` table."""
        self._configure = fn
        return fn

    def serve(self) -> None:
        """Run the plugin until the server asks it to stop (or its parent dies)."""
        from elemta_plugin.server import serve

        serve(self)

    # -- the protocol side ---------------------------------------------------------------------

    def describe(self) -> pb.DescribeResponse:
        return pb.DescribeResponse(
            name=self.name, version=self.version, description=self.description,
            protocol_version=APP_PROTOCOL_VERSION, priority=self.priority,
            failure_policy=cast(Any, int(self.failure_policy)), streaming=self.streaming,
            hooks=[pb.HookRegistration(hook=cast(Any, h), priority=r.priority)
                   for h, r in sorted(self.handlers.items())],
        )

    async def apply_config(self, req: pb.ConfigureRequest) -> str:
        """Run the configure callback; an exception becomes the refusal text."""
        try:
            config = json.loads(req.config_json) if req.config_json else {}
            if not isinstance(config, dict):
                return "config must be a table"
            self.config = config
            self.state_dir = req.state_dir
            self.server_hostname = req.server_hostname
            if self._configure is not None:
                r = self._configure(config)
                if inspect.isawaitable(r):
                    await r
        except Exception as e:  # the server shows this text to the operator
            log.exception("configure failed")
            return f"{type(e).__name__}: {e}"
        return ""

    def handle_now(self, req: pb.HookRequest) -> pb.HookResponse | None:
        """Answer at once if the handler is a quick sync one; None means await ``handle``."""
        reg = self.handlers.get(req.hook)
        if reg is None:
            return pb.HookResponse(id=req.id, result=_CONTINUE)
        if reg.is_async or reg.blocking:
            return None
        try:
            r = reg.fn(Context(reg.hook, req.context))
        except Exception as e:  # noqa: BLE001 - any handler failure is an error reply
            return self._failed(req, reg, e)
        return self._answer(req, r)  # type: ignore[arg-type]

    async def handle(self, req: pb.HookRequest) -> pb.HookResponse:
        reg = self.handlers.get(req.hook)
        if reg is None:
            return pb.HookResponse(id=req.id, result=_CONTINUE)
        ctx = Context(reg.hook, req.context)
        try:
            if reg.is_async:
                r = await reg.fn(ctx)  # type: ignore[misc]
            elif reg.blocking:
                r = await asyncio.get_running_loop().run_in_executor(None, reg.fn, ctx)
            else:
                r = reg.fn(ctx)
        except Exception as e:  # noqa: BLE001 - any handler failure is an error reply
            return self._failed(req, reg, e)
        return self._answer(req, r)

    @staticmethod
    def _answer(req: pb.HookRequest, r: Result | None) -> pb.HookResponse:
        if r is None:
            return pb.HookResponse(id=req.id, result=_CONTINUE)
        if not isinstance(r, Result):
            return pb.HookResponse(
                id=req.id, error=f"handler returned {type(r).__name__}, not Result or None")
        return pb.HookResponse(id=req.id, result=r.to_proto())

    @staticmethod
    def _failed(req: pb.HookRequest, reg: Registration, e: Exception) -> pb.HookResponse:
        log.exception("handler for %s failed", HOOK_NAMES.get(req.hook, req.hook))
        return pb.HookResponse(id=req.id, error=f"{type(e).__name__}: {e}")
