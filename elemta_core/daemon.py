"""The running server: wires config, plugins, spool, delivery, SMTP listeners and admin socket.

Signals: SIGTERM/SIGINT drain sessions and exit; SIGHUP reloads the config (an invalid
config is refused and the running one kept).
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest

from elemta_core import __version__
from elemta_core.admin.server import AdminServer
from elemta_core.config.errors import ConfigError
from elemta_core.config.loader import Config, load_config
from elemta_core.config.schema import parse_hostport
from elemta_core.delivery.direct import DirectLocal
from elemta_core.dns.resolver import Resolver
from elemta_core.hooks.context import HookContext, SecurityEvent
from elemta_core.hooks.pipeline import Pipeline
from elemta_core.hooks.types import HookPoint
from elemta_core.metrics import Metrics
from elemta_core.plugins.api import Plugin, PluginServices
from elemta_core.plugins.manager import PluginManager, discover, plugin_sections
from elemta_core.queue.admin import register as register_queue_commands
from elemta_core.queue.envelope import QueueState
from elemta_core.queue.quarantine import Quarantine
from elemta_core.queue.quarantine_admin import register_quarantine_commands
from elemta_core.queue.runner import QueueRunner
from elemta_core.queue.spool import Spool
from elemta_core.smtp.handler import EdgePolicy, SMTPHandler
from elemta_core.smtp.protocol import ElemtaSMTP
from elemta_core.smtp.tls import load_or_create
from elemta_core.smtp.users import UsersFile
from elemta_core.workers.forward import SubmitForwarder, sweep
from elemta_core.workers.paths import PRIMARY, worker_socket

log = logging.getLogger("elemta")


def load(path: str | Path | None, classes: dict[str, type[Plugin]] | None = None) -> Config:
    """Load a config with every installed plugin's section schema."""
    classes = classes if classes is not None else discover()
    return load_config(path, plugin_sections(classes.values()))


def edge_policy(cfg: Config) -> EdgePolicy:
    import ipaddress

    users = UsersFile(cfg.resolve(cfg.server.users_file)) if cfg.server.users_file else None
    return EdgePolicy(
        hostname=cfg.server.hostname,
        local_domains=frozenset(cfg.delivery.local_domains),
        relay_networks=tuple(ipaddress.ip_network(n, strict=False)
                             for n in cfg.server.relay_networks),
        max_recipients=cfg.server.max_recipients,
        max_connections=cfg.server.max_connections,
        max_message_size=cfg.server.max_message_size,
        users=users,
        software=f"Elemta {__version__}",
        max_connections_per_ip=cfg.server.max_connections_per_ip,
        max_bad_recipients=cfg.server.max_bad_recipients,
        auth_max_failures=cfg.server.auth_max_failures,
        auth_failure_window=cfg.server.auth_failure_window,
        greet_pause=cfg.server.greet_pause,
        bare_newline=cfg.server.bare_newline,
        proxy_trusted=tuple(ipaddress.ip_network(n, strict=False)
                            for n in cfg.server.proxy_trusted),
        proxy_timeout=cfg.server.proxy_timeout,
    )


class Daemon:
    def __init__(self, config: Config, classes: dict[str, type[Plugin]] | None = None,
                 config_path: str | Path | None = None, worker: int | None = None) -> None:
        self.config = config
        self.worker = worker  # None: the only process; else the index under a supervisor
        self.forwarder: SubmitForwarder | None = None
        self.config_path = config_path
        self.classes = classes if classes is not None else discover()
        self.metrics = Metrics()
        self.admin_commands: dict[str, Any] = {}
        self.manager: PluginManager | None = None
        self._pipeline = Pipeline([])
        self.handler: SMTPHandler | None = None
        self.spool: Spool | None = None
        self.runner: QueueRunner | None = None
        self.direct: DirectLocal | None = None
        self.servers: list[asyncio.AbstractServer] = []
        self.admin: AdminServer | None = None
        self.resolver: Resolver | None = None
        self.started_at = 0.0
        self._stop = asyncio.Event()
        self._sweeper: asyncio.Task[None] | None = None
        self._reload_lock = asyncio.Lock()
        self._external: Any = None
        self._hot_reload: Any = None

    # -- wiring ------------------------------------------------------------------------------

    @property
    def state_dir(self) -> Path:
        return self.config.state_dir

    def pipeline(self) -> Pipeline:
        return self._pipeline

    def _emit(self, hook: HookPoint, ctx: HookContext, event: SecurityEvent) -> None:
        if self.handler is not None:
            self.handler.emit(hook, ctx, event)

    def _services(self, cfg: Config) -> PluginServices:
        return PluginServices(
            hostname=cfg.server.hostname, state_dir=cfg.state_dir,
            registry=self.metrics.registry, emit=self._emit, resolver=self.resolver,
            admin_commands=self.admin_commands,
            local_domains=tuple(cfg.delivery.local_domains), config=cfg,
        )

    def _manager(self, cfg: Config) -> PluginManager:
        mgr = PluginManager(cfg, self._services(cfg), self.classes)
        for provider in self.extra_providers(cfg):
            mgr.add_provider(provider)
        return mgr

    def extra_providers(self, cfg: Config) -> list[Any]:
        """Plugin providers beyond entry points (the external plugin host, when present);
        one for the daemon's lifetime, so a reload keeps unchanged external plugins."""
        try:
            from elemta_core.external.provider import ExternalProvider
        except ImportError:
            return []
        if self._external is None:
            self._external = ExternalProvider(self.metrics)
        return [self._external]

    async def start(self) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.resolver = Resolver(cfg.dns)  # shared by every plugin; [dns] changes need a restart
        self.manager = self._manager(cfg)
        await self.manager.start()
        self._pipeline = self.manager.pipeline(self._emit)
        self.metrics.watch_pipeline(self.pipeline)

        self.spool = Spool(self.state_dir / "spool", cfg.spool.sync, cfg.spool.max_batch,
                           "tmp" if self.worker is None else f"tmp-w{self.worker}")
        await self.spool.start()
        quarantine = Quarantine(self.state_dir / "quarantine")
        self.runner = QueueRunner.from_config(cfg, self.spool, self.pipeline, self.resolver,
                                             self.metrics)
        submitter: Any = self.runner
        if self.worker not in (None, PRIMARY):
            self.forwarder = SubmitForwarder(worker_socket(self.state_dir, PRIMARY))
            submitter = self.forwarder
        self.direct = DirectLocal(self.runner.maildir, self.runner.router, self.pipeline,
                                  max_hops=cfg.queue.max_hops, enabled=cfg.delivery.direct_local,
                                  results=self.runner.count_results(self.metrics))
        self.handler = SMTPHandler(edge_policy(cfg), self.pipeline, self.spool, submitter,
                                   quarantine, self.metrics, direct=self.direct)
        tls = (await loop.run_in_executor(None, load_or_create, self.state_dir,
                                          cfg.server.hostname, cfg.server.tls_cert,
                                          cfg.server.tls_key)
               if cfg.server.starttls else None)
        handler = self.handler
        s = cfg.server
        no_auth = ["PLAIN", "LOGIN"] if not s.users_file else []

        def factory(proxy: bool = False) -> ElemtaSMTP:
            return ElemtaSMTP(
                handler, hostname=s.hostname, ident=s.banner, data_size_limit=s.max_message_size,
                enable_SMTPUTF8=True, tls_context=tls, require_starttls=s.require_tls,
                timeout=s.idle_timeout, auth_require_tls=True, auth_exclude_mechanism=no_auth,
                loop=loop, max_commands=s.max_commands, max_bad_commands=s.max_bad_commands,
                line_length_limit=s.max_line_length, command_size_limit=s.max_command_length,
                proxy=proxy,
            )

        listeners = [(a, False) for a in s.listen] + [(a, True) for a in s.proxy_listen]
        for addr, proxy in listeners:
            host, port = parse_hostport("server.listen", addr)
            srv = await loop.create_server(functools.partial(factory, proxy), host or None, port,
                                           backlog=1024, reuse_address=True,
                                           reuse_port=self.worker is not None)
            self.servers.append(srv)
            for sock in srv.sockets:
                log.info("listening on %s", sock.getsockname()[:2])

        self._register_admin()
        register_queue_commands(self.admin_commands, self.runner)
        admin_path = (cfg.admin_socket if self.worker is None
                      else worker_socket(self.state_dir, self.worker))
        self.admin = AdminServer(admin_path, self.admin_commands)
        await self.admin.start()
        if cfg.metrics.listen and self.worker is None:  # workers: the supervisor serves them
            mhost, mport = parse_hostport("metrics.listen", cfg.metrics.listen)
            try:
                self.metrics.serve(mhost, mport)
            except OSError as e:
                log.error("metrics endpoint %s unavailable: %s", cfg.metrics.listen, e)
        if self.forwarder is not None:
            self.forwarder.start()
            self.runner.maildir.start()  # direct local delivery; the primary's runner starts it
        else:
            await self.runner.start()
            if self.worker == PRIMARY:
                self._sweeper = asyncio.create_task(sweep(self.spool, self.runner))
        if cfg.plugins.hot_reload and self.config_path is not None:
            from elemta_core.reload import HotReloader, watched_files

            self._hot_reload = HotReloader(
                lambda: watched_files(self.config, Path(str(self.config_path)),
                                      self.manager.handles if self.manager else ()),
                self.reload)
            self._hot_reload.start()
        self.started_at = time.time()
        if self.worker is None:
            (self.state_dir / "elemta.pid").write_text(f"{os.getpid()}\n")
        log.info("elemta %s ready (hostname %s, state %s, %d plugins)", __version__,
                 s.hostname, self.state_dir, len(self.manager.handles))

    @property
    def ports(self) -> list[int]:
        return [sock.getsockname()[1] for srv in self.servers
                for sock in srv.sockets]  # type: ignore[attr-defined]

    # -- admin commands ----------------------------------------------------------------------

    def _register_admin(self) -> None:
        async def plugin_list(args: dict[str, Any]) -> dict[str, Any]:
            assert self.manager is not None
            return {"plugins": self.manager.describe()}

        async def status(args: dict[str, Any]) -> dict[str, Any]:
            assert self.handler is not None and self.spool is not None
            return {
                "version": __version__, "pid": os.getpid(),
                "uptime": round(time.time() - self.started_at, 1),
                "connections": self.handler.stats.active,
                "queue": {st.value: len(self.spool.ids(st)) for st in QueueState},
            }

        async def reload(args: dict[str, Any]) -> dict[str, Any]:
            await self.reload()
            return {"reloaded": True}

        async def metrics_text(args: dict[str, Any]) -> str:
            return generate_latest(self.metrics.registry).decode()

        async def queue_submit(args: dict[str, Any]) -> int:
            assert self.runner is not None
            ids = [i for i in args.get("ids", []) if isinstance(i, str) and "/" not in i]
            for qid in ids:
                self.runner.submit(qid)
            return len(ids)

        self.admin_commands.update({"plugin.list": plugin_list, "status": status,
                                    "config.reload": reload, "metrics.text": metrics_text})
        if self.worker == PRIMARY:
            self.admin_commands["queue.submit"] = queue_submit
        assert self.handler is not None and self.spool is not None and self.runner is not None
        register_quarantine_commands(self.admin_commands, self.handler.quarantine, self.spool,
                                     self.runner)

    # -- reload and shutdown -----------------------------------------------------------------

    async def reload(self) -> None:
        """Re-read the config and swap in freshly started plugins; keep the old on any error."""
        async with self._reload_lock:
            if self.config_path is None:
                log.info("reload: running on embedded defaults, nothing to re-read")
                return
            try:
                cfg = load(self.config_path, self.classes)
                mgr = self._manager(cfg)
                await mgr.start()
            except ConfigError as e:
                log.error("reload refused, keeping the running config: %s", e)
                raise
            except Exception as e:
                log.error("reload refused, keeping the running config: %s: %s",
                          type(e).__name__, e)
                raise ConfigError("(reload)", f"{type(e).__name__}: {e}") from e
            for key in ("listen", "state_dir", "workers"):
                if getattr(cfg.server, key) != getattr(self.config.server, key):
                    log.warning("reload: server.%s changed; it takes effect on restart", key)
            old = self.manager
            self.manager, self.config = mgr, cfg
            self._pipeline = mgr.pipeline(self._emit)
            if self.handler is not None:
                policy = edge_policy(cfg)
                self.handler.policy = policy
            if self.runner is not None:
                self.runner.reconfigure(cfg)
            if self.direct is not None and self.runner is not None:
                self.direct.reconfigure(self.runner.router, cfg.queue.max_hops,
                                        cfg.delivery.direct_local)
            if old is not None:
                await old.stop()
            log.info("configuration reloaded from %s", self.config_path)

    def request_stop(self) -> None:
        self._stop.set()

    async def stop(self) -> None:
        if self._hot_reload is not None:
            await self._hot_reload.stop()
        for srv in self.servers:
            srv.close()
        if self.handler is not None:
            await self.handler.drain(self.config.server.shutdown_grace)
        for srv in self.servers:
            await srv.wait_closed()
        self.servers.clear()
        if self.forwarder is not None:
            await self.forwarder.stop()
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self.runner is not None and self.forwarder is None:
            await self.runner.stop()
        elif self.runner is not None:
            await self.runner.maildir.close()
        if self.spool is not None:
            await self.spool.close()
        if self.manager is not None:
            await self.manager.stop()
        if self.resolver is not None:
            await self.resolver.close()
        if self.admin is not None:
            await self.admin.stop()
        if self.worker is None:
            (self.state_dir / "elemta.pid").unlink(missing_ok=True)
        log.info("stopped")

    async def run_forever(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.request_stop)
        loop.add_signal_handler(signal.SIGINT, self.request_stop)

        def hup() -> None:
            t = loop.create_task(self._reload_quietly())
            self._bg = t

        loop.add_signal_handler(signal.SIGHUP, hup)
        await self.start()
        settle_gc()
        await self._stop.wait()
        log.info("shutting down: draining sessions (grace %.0fs)", self.config.server.shutdown_grace)
        await self.stop()

    async def _reload_quietly(self) -> None:
        try:
            await self.reload()
        except ConfigError:
            pass


def settle_gc() -> None:
    """What start-up built (modules, config, plugins) lives as long as the process: freeze it
    out of the collector's passes, and collect the young generation less often. A session
    makes few reference cycles, and the collector's full passes over the start-up heap showed
    in profiles of a loaded server (``perf``: gc_collect_main and its visits, 3-4%; user CPU
    per message ~520 -> ~495 µs in ``tests.bench.cpu_cost``)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 20, 20)


#: Allocations between young-generation collections (CPython's default is 700).
GC_THRESHOLD = 20_000


def run(config_path: str | None, worker: int | None = None) -> None:
    """``elemta serve``: one process, or a supervisor of ``[server] workers`` processes."""
    from elemta_core.logs import setup

    classes = discover()
    cfg = load(config_path, classes)
    setup(cfg.logging)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    n = cfg.server.effective_workers
    if worker is None and n > 1:
        from elemta_core.workers.supervisor import Supervisor

        asyncio.run(Supervisor(cfg, config_path, n).run())
        return
    if worker is not None:
        _die_with_parent()
    asyncio.run(Daemon(cfg, classes, config_path, worker).run_forever())


def _die_with_parent() -> None:
    from elemta_core.workers.supervisor import _die_with_parent as die

    die()
