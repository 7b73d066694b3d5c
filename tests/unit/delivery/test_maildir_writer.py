from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from elemta_core.config.model import SyncMode
from elemta_core.delivery.maildir import DeliveryError, MaildirWriter


@pytest.mark.parametrize("mode", list(SyncMode))
async def test_concurrent_deliveries_share_commits(tmp_path: Path, mode: SyncMode) -> None:
    w = MaildirWriter(tmp_path, mode)
    w.start()
    paths = await asyncio.gather(*(w.deliver(f"u{i % 3}@Example.ORG", b"Subject: x\r\n\r\n%d\r\n" % i,
                                             queue_id=f"Q{i}", mail_from="a@b.example")
                                   for i in range(30)))
    await w.close()
    assert len(set(paths)) == 30
    assert w.committer.batches < 30
    for i, p in enumerate(paths):
        assert p.parent == tmp_path / "example.org" / f"u{i % 3}" / "new"
        data = p.read_bytes()
        assert data.startswith(b"Return-Path: <a@b.example>\r\nDelivered-To: u")
        assert data.endswith(b"\r\n%d\r\n" % i)
    assert not any((tmp_path / "example.org" / "u0" / "tmp").iterdir())


async def test_unwritable_root_is_a_delivery_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    w = MaildirWriter(tmp_path / "file")
    w.start()
    with pytest.raises(DeliveryError):
        await w.deliver("u@example.org", b"x", queue_id="Q", mail_from="")
    await w.close()
