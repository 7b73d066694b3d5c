"""HotReloader: a change to a watched file runs reload once; a refused reload is counted and
the watcher goes on; files outside the set are ignored."""

from __future__ import annotations

import asyncio
from pathlib import Path

from elemta_core.config.errors import ConfigError
from elemta_core.reload import HotReloader


async def wait_for(cond, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_watched_change_reloads_and_a_refusal_is_survived(tmp_path: Path) -> None:
    watched = tmp_path / "elemta.toml"
    other = tmp_path / "unrelated.txt"
    watched.write_text("a")
    calls: list[str] = []

    async def reload() -> None:
        calls.append(watched.read_text())
        if watched.read_text() == "bad":
            raise ConfigError("(syntax)", "bad")

    r = HotReloader(lambda: {watched}, reload, debounce_ms=50)
    r.start()
    try:
        await asyncio.sleep(0.3)  # the watcher is up
        other.write_text("x")
        await asyncio.sleep(0.5)
        assert calls == []
        watched.write_text("bad")
        await wait_for(lambda: r.refused == 1)
        watched.write_text("good")
        await wait_for(lambda: r.reloads == 1)
        assert calls == ["bad", "good"]
    finally:
        await r.stop()


async def test_stop_returns_promptly_with_nothing_to_watch(tmp_path: Path) -> None:
    async def reload() -> None:
        raise AssertionError("never called")

    r = HotReloader(lambda: {tmp_path / "missing" / "x.toml"}, reload)
    r.start()
    await asyncio.sleep(0.05)
    await asyncio.wait_for(r.stop(), 2)
