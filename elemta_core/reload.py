"""Hot reload (``[plugins] hot_reload = true``, meant for development): watch the config file,
the catalogs it names and every pinned plugin file, and run the daemon's reload when one
changes.

A reload is the same as SIGHUP's: the new config is loaded and its plugins started before
anything is swapped, so an invalid change (bad TOML, a file that no longer matches its pin,
a plugin that fails to start) is refused and the running state kept. Unchanged external
plugins keep running (see :mod:`elemta_core.external.provider`); a changed one is started
afresh and the old process drained. The watcher never runs anything itself: every launch
goes through the pins.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import watchfiles

from elemta_core.config.errors import ConfigError
from elemta_core.config.loader import Config

log = logging.getLogger("elemta.reload")

#: Quiet time after the last change before reloading (an editor's save, then a re-pin).
DEBOUNCE_MS = 400


def watched_files(config: Config, config_path: Path | None,
                  handles: Iterable[Any]) -> set[Path]:
    """The files whose change means "reload": the config, its catalogs, pinned plugin files."""
    files: set[Path] = set()
    if config_path is not None:
        files.add(Path(config_path).absolute())
    for inc in config.plugins.include:
        if isinstance(inc, str) and inc:
            files.add(config.resolve(inc).absolute())
    directory = config.resolve(config.plugins.directory)
    for name in config.plugins.enabled or ():
        files.add((directory / name / "catalog.toml").absolute())
    for h in handles:
        entry = getattr(h, "entry", None)
        if entry is not None and hasattr(entry, "pinned"):
            files.update(p.absolute() for p in entry.pinned())
            if entry.source:
                files.add(Path(entry.source).absolute())
    return files


def _only(names: set[str]) -> Callable[[watchfiles.Change, str], bool]:
    def keep(_change: watchfiles.Change, path: str) -> bool:
        return path in names

    return keep


class HotReloader:
    """Watches :func:`watched_files` (recomputed after every reload) and calls ``reload``."""

    def __init__(self, files: Callable[[], set[Path]], reload: Callable[[], Awaitable[None]],
                 debounce_ms: int = DEBOUNCE_MS) -> None:
        self._files = files
        self._reload = reload
        self.debounce_ms = debounce_ms
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.reloads = 0
        self.refused = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="hot-reload")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 5)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        while not self._stop.is_set():
            files = self._files()
            dirs = sorted({f.parent for f in files if f.parent.is_dir()})
            if not dirs:
                log.warning("hot reload: nothing to watch")
                await self._stop.wait()
                return
            names = {str(f) for f in files}
            log.info("hot reload: watching %d files in %d directories", len(files), len(dirs))
            changed: set[str] = set()
            try:
                async for batch in watchfiles.awatch(
                        *dirs, watch_filter=_only(names), recursive=False,
                        debounce=self.debounce_ms, stop_event=self._stop):
                    changed = {p for _c, p in batch}
                    break
            except Exception as e:  # noqa: BLE001 - a watcher fault must not stop the server
                log.error("hot reload: watching failed (%s: %s); retrying in 1 s",
                          type(e).__name__, e)
                await asyncio.sleep(1)
                continue
            if not changed or self._stop.is_set():
                continue
            log.info("hot reload: %s changed; reloading", ", ".join(sorted(changed)))
            try:
                await self._reload()
                self.reloads += 1
            except ConfigError as e:
                self.refused += 1
                log.error("hot reload refused, the running state is kept: %s", e)
            except Exception as e:  # noqa: BLE001 - reported, the old state keeps serving
                self.refused += 1
                log.error("hot reload failed, the running state is kept: %s: %s",
                          type(e).__name__, e)
