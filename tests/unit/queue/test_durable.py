from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from elemta_core.queue.durable import PARALLEL_AFTER, GroupCommitter


class CountingPool(ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(max_workers=4)
        self.maps = 0

    def map(self, *a: Any, **kw: Any) -> Any:  # type: ignore[override]
        self.maps += 1
        return super().map(*a, **kw)


async def commit_batch(tmp_path: Path, sync_seconds: float) -> CountingPool:
    c = GroupCommitter()
    pool = c._syncers = CountingPool()
    c.start()
    c.sync_seconds = sync_seconds
    (tmp_path / "tmp").mkdir()
    (tmp_path / "new").mkdir()
    await asyncio.gather(*(c.write(tmp_path / "tmp" / f"f{i}", tmp_path / "new" / f"f{i}", b"x%d" % i)
                           for i in range(8)))
    c.sync_seconds = sync_seconds  # as measured before the batch, for the assertion below
    await c.close()
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == [f"f{i}" for i in range(8)]
    assert not list((tmp_path / "tmp").iterdir())
    return pool


@pytest.mark.parametrize("slow", [False, True])
async def test_syncs_overlap_only_where_they_are_slow(tmp_path: Path, slow: bool) -> None:
    pool = await commit_batch(tmp_path, PARALLEL_AFTER if slow else PARALLEL_AFTER / 1000)
    assert (pool.maps > 0) is slow


async def test_sync_time_is_learned(tmp_path: Path) -> None:
    c = GroupCommitter()
    c.start()
    c.sync_seconds = 10.0  # absurd: the measured syncs pull it down
    for i in range(20):
        await c.write(tmp_path / f"t{i}", tmp_path / f"f{i}", b"x")
    await c.close()
    assert c.sync_seconds < 10.0 * (15 / 16) ** 10
