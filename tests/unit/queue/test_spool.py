from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path

import pytest

from elemta_core.config.model import SyncMode
from elemta_core.queue.envelope import Envelope, QueueState, Recipient, new_queue_id
from elemta_core.queue.spool import Spool, SpoolError


def env(qid: str | None = None) -> Envelope:
    return Envelope(qid or new_queue_id(), "a@example.org", [Recipient("b@localhost")])


@pytest.mark.parametrize("mode", list(SyncMode))
async def test_concurrent_stores_are_group_committed(tmp_path: Path, mode: SyncMode) -> None:
    sp = Spool(tmp_path, mode)
    await sp.start()
    envs = [env() for _ in range(50)]
    await asyncio.gather(*(sp.store(e, b"Subject: x\r\n\r\nbody %d\r\n" % i)
                           for i, e in enumerate(envs)))
    assert sp.committed == 50 and sp.batches < 50
    got_env, data = sp.read(envs[7].queue_id)
    assert got_env.mail_from == "a@example.org" and data.endswith(b"body 7\r\n")
    assert list(sp.tmp_dir.iterdir()) == []
    await sp.close()


async def test_queue_ids_are_unique_and_sortable() -> None:
    ids = [new_queue_id() for _ in range(2000)]
    assert len(set(ids)) == 2000
    stamps = [i[:13] for i in ids]  # the µs time prefix orders them by arrival
    assert stamps == sorted(stamps)


async def test_write_error_is_a_spool_error_never_success(tmp_path: Path, monkeypatch) -> None:
    sp = Spool(tmp_path)
    await sp.start()
    real_write = os.write

    def full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(SpoolError) as e:
        await sp.store(env(), b"x")
    assert e.value.no_space
    monkeypatch.setattr(os, "write", real_write)
    assert sp.ids(QueueState.ACTIVE) == []
    await sp.close()


async def test_corrupt_entries_are_moved_aside_not_fatal(tmp_path: Path) -> None:
    sp = Spool(tmp_path)
    await sp.start()
    good = env()
    await sp.store(good, b"ok\r\n")
    (sp.dir(QueueState.ACTIVE) / "BROKEN").write_bytes(b"garbage")
    (sp.dir(QueueState.ACTIVE) / "TRUNC").write_bytes(b"ELEMTA-SPOOL 1\n{\"queue_id\"")
    (sp.tmp_dir / "leftover").write_bytes(b"never acknowledged")
    scanned = dict(sp.scan(QueueState.ACTIVE))
    assert scanned["BROKEN"] is None and scanned["TRUNC"] is None
    assert scanned[good.queue_id] is not None
    assert sorted(p.name for p in sp.corrupt_dir.iterdir()) == ["active-BROKEN", "active-TRUNC"]
    await sp.close()
    sp2 = Spool(tmp_path)
    await sp2.start()  # recovery clears unacknowledged temp files
    assert list(sp2.tmp_dir.iterdir()) == []
    await sp2.close()


async def test_rewrite_and_move(tmp_path: Path) -> None:
    sp = Spool(tmp_path)
    await sp.start()
    e = env()
    await sp.store(e, b"data")
    e.attempts = 3
    sp.rewrite_envelope(e, b"data", QueueState.ACTIVE)
    sp.move(e.queue_id, QueueState.ACTIVE, QueueState.HOLD)
    got, data = sp.read(e.queue_id, QueueState.HOLD)
    assert got.attempts == 3 and data == b"data"
    await sp.close()
