"""Talks to a running daemon's admin socket (blocking; used by the CLI)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any


class AdminUnavailable(Exception):
    """No daemon answers on that socket."""


class AdminError(Exception):
    """The daemon answered with an error."""


def call(path: Path, cmd: str, args: dict[str, Any] | None = None, timeout: float = 10.0) -> Any:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        try:
            s.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as e:
            raise AdminUnavailable(f"no daemon at {path}: {e.strerror}") from None
        s.sendall(json.dumps({"cmd": cmd, "args": args or {}}).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                raise AdminUnavailable(f"daemon at {path} closed the connection")
            buf += chunk
    finally:
        s.close()
    resp = json.loads(buf)
    if not resp.get("ok"):
        raise AdminError(resp.get("error", "unknown error"))
    return resp.get("result")


async def acall(path: Path, cmd: str, args: dict[str, Any] | None = None,
                timeout: float = 10.0) -> Any:
    """The asyncio twin of :func:`call` (used by the worker supervisor to reach workers)."""
    import asyncio

    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path),
                                                                             limit=64 * 1024 * 1024),
                                                timeout)
    except (FileNotFoundError, ConnectionRefusedError) as e:
        raise AdminUnavailable(f"no daemon at {path}: {e.strerror}") from None
    except TimeoutError:
        raise AdminUnavailable(f"daemon at {path} did not accept in {timeout}s") from None
    try:
        writer.write(json.dumps({"cmd": cmd, "args": args or {}}).encode() + b"\n")
        line = await asyncio.wait_for(reader.readline(), timeout)
    except TimeoutError:
        raise AdminUnavailable(f"daemon at {path} did not answer {cmd} in {timeout}s") from None
    finally:
        writer.close()
    if not line:
        raise AdminUnavailable(f"daemon at {path} closed the connection")
    resp = json.loads(line)
    if not resp.get("ok"):
        raise AdminError(resp.get("error", "unknown error"))
    return resp.get("result")
