"""The child process: spawn, read the handshake, capture stderr into our log, kill.

go-plugin's runner: the child gets a scrubbed environment and dies with us
(PR_SET_PDEATHSIG, set in :func:`security.preexec`); each stderr line is logged under
``elemta.plugin.<name>`` at the level the line starts with.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import signal
import subprocess
from pathlib import Path

from elemta_core.external.catalog import Limits
from elemta_core.external.errors import HandshakeError, LaunchError
from elemta_core.external.handshake import MAX_LINE, Handshake, check_socket, parse
from elemta_core.external.security import preexec, run_as

_LEVELS = {"TRACE": logging.DEBUG, "DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING,
           "WARN": logging.WARNING, "ERROR": logging.ERROR, "CRITICAL": logging.CRITICAL}


def log_level(line: str) -> tuple[int, str]:
    """The level a stderr line asks for: a leading ``ERROR``/``WARNING``/… word, or a
    go-plugin (hclog) JSON line's ``@level``/``@message``; INFO otherwise."""
    if line.startswith("{") and '"@level"' in line:
        try:
            rec = json.loads(line)
        except ValueError:
            rec = None
        if isinstance(rec, dict):
            level = _LEVELS.get(str(rec.get("@level", "")).upper(), logging.INFO)
            extra = {k: v for k, v in rec.items() if not k.startswith("@")}
            msg = str(rec.get("@message", line))
            return level, f"{msg} {json.dumps(extra)}" if extra else msg
    first, _, rest = line.partition(" ")
    word = _LEVELS.get(first.rstrip(":"))
    return (word, rest) if word is not None and rest else (logging.INFO, line)


class PluginProcess:
    """One launch of a plugin's command."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], cwd: Path,
                 limits: Limits, user: str = "", mtls: bool = False) -> None:
        self.name = name
        self.mtls = mtls
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.limits = limits
        self.user = user
        self.log = logging.getLogger(f"elemta.plugin.{name}")
        self.proc: asyncio.subprocess.Process | None = None
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=8)
        self._pumps: list[asyncio.Task[None]] = []

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode if self.proc is not None else None

    def _tail(self) -> str:
        return " | ".join(self.stderr_tail) if self.stderr_tail else "(nothing on stderr)"

    async def start(self, timeout: float) -> Handshake:
        """Spawn the child and return its checked handshake; any fault is a LaunchError."""
        user = run_as(self.user) if self.user else None
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, env=self.env, cwd=str(self.cwd), limit=MAX_LINE,
                preexec_fn=preexec(self.limits, os.getpid(), user), start_new_session=True,
            )
        except OSError as e:
            raise LaunchError(f"cannot run {self.argv[0]}: {e.strerror or e}") from None
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._pumps.append(asyncio.create_task(self._pump_stderr(self.proc.stderr)))
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        except TimeoutError:
            self.kill()
            raise HandshakeError(f"no handshake line on stdout within {timeout:g}s; "
                                 f"stderr: {self._tail()}") from None
        except ValueError:  # a line longer than the limit
            self.kill()
            raise HandshakeError("stdout is not a handshake line (a line of more than "
                                 f"{MAX_LINE} bytes); log to stderr, not stdout") from None
        if not line:
            try:
                rc = await asyncio.wait_for(self.proc.wait(), 2)
            except TimeoutError:
                self.kill()
                raise HandshakeError("the plugin closed stdout without a handshake line; "
                                     f"stderr: {self._tail()}") from None
            await asyncio.sleep(0)  # let the stderr pump read the last lines
            await self._drain_stderr()
            raise LaunchError(f"exited with code {rc} before the handshake; "
                              f"stderr: {self._tail()}")
        try:
            hs = parse(line, self.mtls)
            check_socket(hs)
        except HandshakeError:
            self.kill()
            raise
        self._pumps.append(asyncio.create_task(self._pump_stdout(self.proc.stdout)))
        return hs

    async def _drain_stderr(self) -> None:
        if self._pumps:
            try:
                await asyncio.wait_for(asyncio.shield(self._pumps[0]), 0.5)
            except (TimeoutError, asyncio.CancelledError):
                pass

    async def _pump_stderr(self, stream: asyncio.StreamReader) -> None:
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # over-long line: take what is there
                raw = await stream.read(MAX_LINE)
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip()
            if not line:
                continue
            self.stderr_tail.append(line[:300])
            level, text = log_level(line)
            self.log.log(level, "%s", text)

    async def _pump_stdout(self, stream: asyncio.StreamReader) -> None:
        while True:
            try:
                raw = await stream.readline()
            except ValueError:
                raw = await stream.read(MAX_LINE)
            if not raw:
                return
            self.log.warning("unexpected output on stdout: %s",
                             raw.decode("utf-8", "replace").rstrip()[:300])

    async def wait(self) -> int:
        assert self.proc is not None
        return await self.proc.wait()

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.returncode is None:
            try:
                os.killpg(self.proc.pid, sig)  # the plugin's own children too
            except ProcessLookupError:
                pass
            except PermissionError:
                self.proc.send_signal(sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)

    async def reap(self, timeout: float = 5.0) -> int | None:
        """SIGKILL if still running, wait for it, and stop the pumps."""
        if self.proc is None:
            return None
        self.kill()
        try:
            rc: int | None = await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            rc = None
        for t in self._pumps:
            t.cancel()
        return rc
