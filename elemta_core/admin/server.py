"""The admin socket: a unix socket (mode 0600) answering one JSON request per line.

Components register commands (``plugin.list``, ``queue.list`` …) in a shared table; the
CLI is the usual client (:mod:`elemta_core.admin.client`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from elemta_core.admin.client import AdminError, AdminUnavailable
from elemta_core.plugins.api import AdminHandler

log = logging.getLogger("elemta.admin")

MAX_REQUEST = 1024 * 1024


class AdminServer:
    def __init__(self, path: Path, commands: dict[str, AdminHandler],
                 fallback: Callable[[str, dict[str, Any]], Awaitable[Any]] | None = None) -> None:
        self.path = path
        self.commands = commands
        self.fallback = fallback  # for commands not in the table (the worker supervisor forwards)
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.path.exists() or self.path.is_symlink():
            self.path.unlink()
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._client, path=str(self.path),
                                                           limit=MAX_REQUEST)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self.path.unlink(missing_ok=True)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                writer.write(json.dumps(await self.dispatch(line), default=str).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()

    async def dispatch(self, line: bytes) -> dict[str, Any]:
        try:
            req = json.loads(line)
            cmd = req["cmd"]
            args = req.get("args") or {}
            if not isinstance(cmd, str) or not isinstance(args, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return {"ok": False, "error": 'bad request: expected {"cmd": str, "args": {}}'}
        handler = self.commands.get(cmd)
        if handler is None and self.fallback is None:
            return {"ok": False, "error": f"unknown command {cmd!r}",
                    "commands": sorted(self.commands)}
        try:
            if handler is None:
                assert self.fallback is not None
                return {"ok": True, "result": await self.fallback(cmd, args)}
            return {"ok": True, "result": await handler(args)}
        except (KeyError, ValueError, LookupError, OSError, AdminError, AdminUnavailable) as e:
            return {"ok": False, "error": str(e) or type(e).__name__}
        except Exception as e:
            log.exception("admin command %s failed", cmd)
            return {"ok": False, "error": f"{type(e).__name__}: {e}"}
