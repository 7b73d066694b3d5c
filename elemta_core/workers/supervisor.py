"""The supervisor of worker processes: starts N workers, restarts the ones that die, forwards
signals, and answers the admin socket and the metrics endpoint for all of them.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from elemta_core import __version__
from elemta_core.admin.client import AdminError, AdminUnavailable, acall, call
from elemta_core.admin.server import AdminServer
from elemta_core.config.loader import Config
from elemta_core.config.schema import parse_hostport
from elemta_core.workers.paths import PRIMARY, worker_dir, worker_socket

log = logging.getLogger("elemta.workers")

PR_SET_PDEATHSIG = 1
#: Commands answered by every worker and merged; everything else goes to the primary.
FAN_OUT = frozenset({"plugin.list", "status", "config.reload"})


def _die_with_parent() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


class WorkerMetrics(Collector):
    """Each worker's /metrics, read over its admin socket at scrape time, labelled ``worker``."""

    def __init__(self, state_dir: Path, workers: int) -> None:
        self.state_dir = state_dir
        self.workers = workers

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for i in range(self.workers):
            try:
                text = call(worker_socket(self.state_dir, i), "metrics.text", timeout=5)
            except (AdminUnavailable, AdminError, OSError):
                continue
            for fam in text_string_to_metric_families(text):
                out = merged.get(fam.name)
                if out is None:
                    out = merged[fam.name] = Metric(fam.name, fam.documentation, fam.type)
                for s in fam.samples:
                    out.add_sample(s.name, {**s.labels, "worker": str(i)}, s.value)
        yield from merged.values()


class Supervisor:
    def __init__(self, config: Config, config_path: str | None, workers: int) -> None:
        self.config = config
        self.config_path = config_path
        self.workers = workers
        self.state_dir = config.state_dir
        self.procs: dict[int, asyncio.subprocess.Process] = {}
        self.restarts: dict[int, int] = {i: 0 for i in range(workers)}
        self._stopping = False
        self._stop = asyncio.Event()
        self._watchers: list[asyncio.Task[None]] = []
        self.started_at = time.time()

    def _argv(self, index: int) -> list[str]:
        argv = [sys.executable, "-m", "elemta_core.cli.main", "serve", "--worker-index", str(index)]
        if self.config_path:
            argv += ["-c", self.config_path]
        return argv

    async def _spawn(self, index: int) -> None:
        proc = await asyncio.create_subprocess_exec(*self._argv(index), preexec_fn=_die_with_parent)
        self.procs[index] = proc
        log.info("worker %d started (pid %d)", index, proc.pid)

    async def _watch(self, index: int) -> None:
        """Restart a worker that dies, with backoff (1 s doubling to 30 s, reset after 60 s up)."""
        backoff = 1.0
        while not self._stopping:
            proc = self.procs[index]
            started = time.monotonic()
            rc = await proc.wait()
            if self._stopping:
                return
            up = time.monotonic() - started
            backoff = 1.0 if up > 60 else min(backoff * 2, 30.0)
            log.error("worker %d (pid %d) exited with %s after %.1fs; restarting in %.0fs",
                      index, proc.pid, rc, up, backoff if up <= 60 else 1.0)
            await asyncio.sleep(backoff if up <= 60 else 1.0)
            if self._stopping:
                return
            self.restarts[index] += 1
            await self._spawn(index)

    # -- admin ---------------------------------------------------------------------------------

    async def _fan_out(self, cmd: str, args: dict[str, Any]) -> list[tuple[int, Any]]:
        async def one(i: int) -> tuple[int, Any]:
            try:
                return i, await acall(worker_socket(self.state_dir, i), cmd, args, timeout=10)
            except (AdminUnavailable, AdminError) as e:
                return i, e
        return list(await asyncio.gather(*(one(i) for i in range(self.workers))))

    async def dispatch(self, cmd: str, args: dict[str, Any]) -> Any:
        if cmd not in FAN_OUT:
            return await acall(worker_socket(self.state_dir, PRIMARY), cmd, args, timeout=60)
        answers = await self._fan_out(cmd, args)
        if cmd == "plugin.list":
            plugins = []
            for i, ans in answers:
                if isinstance(ans, Exception):
                    continue
                for p in ans["plugins"]:
                    plugins.append({**p, "worker": i})
            return {"plugins": plugins}
        if cmd == "status":
            ok = [(i, a) for i, a in answers if not isinstance(a, Exception)]
            primary = dict(ok[0][1]) if ok and ok[0][0] == PRIMARY else {}
            return {
                "version": __version__, "pid": os.getpid(),
                "uptime": round(time.time() - self.started_at, 1),
                "connections": sum(a.get("connections", 0) for _, a in ok),
                "queue": primary.get("queue", {}),
                "workers": [{"index": i, "pid": self.procs[i].pid if i in self.procs else None,
                             "restarts": self.restarts[i],
                             "state": "ready" if not isinstance(a, Exception) else f"down: {a}"}
                            for i, a in answers],
            }
        errors = [f"worker {i}: {a}" for i, a in answers if isinstance(a, Exception)]
        if errors:
            raise AdminError("; ".join(errors))
        return {"reloaded": True, "workers": self.workers}

    # -- life cycle ----------------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        worker_dir(self.state_dir).mkdir(exist_ok=True, mode=0o700)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._forward, signal.SIGHUP)
        # The primary first: it recovers the queue before the others take mail.
        await self._spawn(PRIMARY)
        await self._wait_ready(PRIMARY)
        for i in range(1, self.workers):
            await self._spawn(i)
        for i in range(self.workers):
            self._watchers.append(asyncio.create_task(self._watch(i), name=f"watch-{i}"))
        admin = AdminServer(self.config.admin_socket, {}, fallback=self.dispatch)
        await admin.start()
        if self.config.metrics.listen:
            host, port = parse_hostport("metrics.listen", self.config.metrics.listen)
            registry = CollectorRegistry()
            registry.register(WorkerMetrics(self.state_dir, self.workers))
            try:
                start_http_server(port, addr=host, registry=registry)
            except OSError as e:
                log.error("metrics endpoint %s unavailable: %s", self.config.metrics.listen, e)
        (self.state_dir / "elemta.pid").write_text(f"{os.getpid()}\n")
        log.info("elemta %s supervisor ready with %d workers", __version__, self.workers)
        await self._stop.wait()
        log.info("shutting down %d workers", self.workers)
        self._stopping = True
        self._forward(signal.SIGTERM)
        grace = self.config.server.shutdown_grace + 10
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in self.procs.values())), grace)
        except TimeoutError:
            for p in self.procs.values():
                if p.returncode is None:
                    p.kill()
        for t in self._watchers:
            t.cancel()
        await admin.stop()
        (self.state_dir / "elemta.pid").unlink(missing_ok=True)
        log.info("stopped")

    async def _wait_ready(self, index: int, timeout: float = 60) -> None:
        sock = worker_socket(self.state_dir, index)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.procs[index].returncode is not None:
                raise RuntimeError(f"worker {index} exited with {self.procs[index].returncode}")
            try:
                await acall(sock, "status", timeout=2)
                return
            except (AdminUnavailable, AdminError, OSError):
                await asyncio.sleep(0.1)
        raise RuntimeError(f"worker {index} not ready after {timeout}s")

    def _forward(self, sig: int) -> None:
        for p in self.procs.values():
            if p.returncode is None:
                p.send_signal(sig)
