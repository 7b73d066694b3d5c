"""Keeps one external plugin running: the part go-plugin leaves to its users.

States: ``starting → ready``; a crash, a broken stream or two failed health checks in a row
send it to ``backoff`` and a restart (the first one at once, then 0.1 s, 0.2 s … up to 10 s);
more than ``max_restarts`` failures within ``restart_window_s`` is a crash loop and the
plugin is ``disabled`` with its last error; files that fail verification make it
``refused``. Outside ``ready`` every call raises :class:`PluginUnavailable` at once, so the
pipeline applies the failure policy and no SMTP session waits for a restart.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from elemta_core import __version__
from elemta_core.external import mtls
from elemta_core.external.catalog import CatalogEntry
from elemta_core.external.client import PluginClient
from elemta_core.external.errors import ExternalPluginError, LaunchError, RefusedError
from elemta_core.external.process import PluginProcess
from elemta_core.external.proto_gen.elemta.plugin.v1 import plugin_pb2 as pb
from elemta_core.external.security import environment, private_dir, verify
from elemta_core.hooks.context import HookContext
from elemta_core.hooks.pipeline import PluginUnavailable
from elemta_core.hooks.types import HookResult

log = logging.getLogger("elemta.external")

MAX_BACKOFF_S = 10.0
FIRST_BACKOFF_S = 0.1
#: Consecutive failed health checks that make a plugin unhealthy (one slow answer is not).
HEALTH_FAILURES = 2


class State(str, enum.Enum):
    STARTING = "starting"
    READY = "ready"
    BACKOFF = "backoff"
    DISABLED = "disabled"
    REFUSED = "refused"
    STOPPED = "stopped"


def backoff_delay(failures: int) -> float:
    """0 for the first failure in the window (restart at once), then doubling from 0.1 s."""
    if failures <= 1:
        return 0.0
    return min(FIRST_BACKOFF_S * float(2 ** (failures - 2)), MAX_BACKOFF_S)


class Supervisor:
    def __init__(self, entry: CatalogEntry, hostname: str, state_dir: Path,
                 on_restart: Callable[[], None] | None = None) -> None:
        self.entry = entry
        self.hostname = hostname
        self.state_dir = state_dir
        self.on_restart = on_restart
        self.state = State.STOPPED
        self.restarts = 0
        self.last_error = ""
        self.description: pb.DescribeResponse | None = None
        self.client: PluginClient | None = None
        self._pending_client: PluginClient | None = None  # connected, not yet ready
        self.process: PluginProcess | None = None
        self._socket_dir: Path | None = None
        self._monitor: asyncio.Task[None] | None = None
        self._failures: collections.deque[float] = collections.deque()
        self._unavailable = PluginUnavailable(f"plugin {entry.name} is {self.state.value}")

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def pid(self) -> int | None:
        p = self.process
        return p.pid if p is not None and p.returncode is None else None

    def _set(self, state: State, error: str = "") -> None:
        if error:
            self.last_error = error
        if state is not self.state:
            log.info("plugin %s: %s -> %s%s", self.name, self.state.value, state.value,
                     f" ({error})" if error else "")
        self.state = state
        why = f": {self.last_error}" if self.last_error and state is not State.READY else ""
        self._unavailable = PluginUnavailable(f"plugin {self.name} is {state.value}{why}")

    # -- calls -------------------------------------------------------------------------------

    async def call(self, hook: int, ctx: HookContext) -> HookResult:
        client = self.client
        if self.state is not State.READY or client is None:
            raise self._unavailable
        return await client.call(hook, ctx)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """First launch; raises (RefusedError, LaunchError …) so the server can refuse to start."""
        try:
            await self._launch()
        except ExternalPluginError as e:
            self._set(State.REFUSED if isinstance(e, RefusedError) else State.STOPPED, str(e))
            await self._teardown(graceful=False)
            raise
        except Exception as e:  # e.g. an OSError making its directories: never leave a child
            self._set(State.STOPPED, f"{type(e).__name__}: {e}")
            await self._teardown(graceful=False)
            raise LaunchError(self.last_error) from e
        self._monitor = asyncio.create_task(self._supervise())

    async def _launch(self) -> None:
        e = self.entry
        self._set(State.STARTING)
        loop = asyncio.get_running_loop()
        argv = await loop.run_in_executor(None, verify, e)
        timeout = e.start_timeout_ms / 1000
        deadline = loop.time() + timeout
        self._socket_dir = private_dir(e.name, e.user)
        data_dir = self.state_dir / "plugins" / e.name
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if e.user:
            shutil.chown(data_dir, e.user)
        tls = await loop.run_in_executor(None, mtls.generate) if e.mtls else None
        env = environment(e, self._socket_dir, data_dir, tls.cert_pem if tls else None)
        proc = PluginProcess(e.name, argv, env, e.base_dir, e.limits, e.user, bool(e.mtls))
        self.process = proc
        hs = await proc.start(timeout)
        client = PluginClient(e.name, hs, tls)
        self.client = None
        self._pending_client = client
        await client.connect(max(deadline - loop.time(), 0.1))
        d = await client.describe(__version__, max(deadline - loop.time(), 0.1))
        await client.configure(e.name, e.config, self.hostname, str(data_dir),
                               max(deadline - loop.time(), 0.1))
        if e.mode == "stream" or (e.mode == "auto" and d.streaming):
            client.open_stream()
        self.description = d
        self.client = client
        self._set(State.READY)
        log.info("plugin %s %s ready (pid %s, %s)", e.name, d.version, proc.pid,
                 "stream" if client.streaming else "unary")

    async def _watch(self) -> str:
        """Wait until the running plugin dies, breaks its stream or fails its health checks."""
        assert self.process is not None and self.client is not None
        proc, client = self.process, self.client
        interval = self.entry.health_interval_ms / 1000

        async def exited() -> str:
            rc = await proc.wait()
            return f"exited with code {rc}" + (f"; stderr: {proc._tail()}" if rc else "")

        async def broken() -> str:
            await client.broken.wait()
            return client.broken_reason

        async def unhealthy() -> str:
            misses = 0
            while True:
                await asyncio.sleep(interval)
                try:
                    await client.controller.check(min(interval, 2.0))
                    misses = 0
                except ExternalPluginError as e:
                    misses += 1
                    if misses >= HEALTH_FAILURES:
                        return f"unhealthy: {e}"

        tasks = [asyncio.create_task(f()) for f in (exited, broken, unhealthy)]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if tasks[0] not in done:
                # A broken stream or a failed health check often means the process is dying:
                # its exit code and stderr tell the operator more.
                await asyncio.wait([tasks[0]], timeout=0.2)
                if tasks[0].done():
                    return tasks[0].result()
            return next(iter(done)).result()
        finally:
            for t in tasks:
                t.cancel()

    async def _supervise(self) -> None:
        while True:
            reason = await self._watch()
            self._set(State.BACKOFF, reason)
            log.warning("plugin %s failed: %s", self.name, reason)
            await self._teardown(graceful=False)
            while True:
                now = time.monotonic()
                self._failures.append(now)
                while self._failures and self._failures[0] < now - self.entry.restart_window_s:
                    self._failures.popleft()
                if len(self._failures) > self.entry.max_restarts:
                    self._set(State.DISABLED, f"crash loop: {len(self._failures)} failures in "
                                              f"{self.entry.restart_window_s:g}s; last: "
                                              f"{self.last_error}")
                    log.error("plugin %s disabled: %s", self.name, self.last_error)
                    return
                await asyncio.sleep(backoff_delay(len(self._failures)))
                self.restarts += 1
                if self.on_restart is not None:
                    self.on_restart()
                try:
                    await self._launch()
                    break
                except RefusedError as e:
                    self._set(State.REFUSED, str(e))
                    log.error("plugin %s refused: %s", self.name, e)
                    await self._teardown(graceful=False)
                    return
                except ExternalPluginError as e:
                    self._set(State.BACKOFF, str(e))
                    log.warning("plugin %s restart failed: %s", self.name, e)
                    await self._teardown(graceful=False)
                except Exception as e:
                    self._set(State.BACKOFF, f"{type(e).__name__}: {e}")
                    log.exception("plugin %s restart failed", self.name)
                    await self._teardown(graceful=False)

    async def _teardown(self, graceful: bool) -> None:
        """Stop the current launch: Shutdown RPC and grace when ``graceful``, then SIGKILL."""
        client = self.client or self._pending_client
        self.client = None
        self._pending_client = None
        proc, self.process = self.process, None
        if graceful and client is not None and proc is not None and proc.returncode is None:
            grace = self.entry.shutdown_grace_ms / 1000
            deadline = time.monotonic() + grace
            while client.in_flight and time.monotonic() < deadline:
                await asyncio.sleep(0.01)  # drain calls already sent
            client.end_stream()
            if await client.controller.shutdown(grace):
                try:
                    await asyncio.wait_for(proc.wait(), grace)
                except TimeoutError:
                    log.warning("plugin %s did not exit %gs after Shutdown; killing it",
                                self.name, grace)
        if client is not None:
            await client.close()
        if proc is not None:
            await proc.reap()
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None

    async def stop(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            try:
                await self._monitor
            except asyncio.CancelledError:
                pass
            self._monitor = None
        keep = self.state in (State.DISABLED, State.REFUSED)
        if not keep:
            self._set(State.STOPPED)
        await self._teardown(graceful=True)
