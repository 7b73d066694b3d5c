from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from elemta_core.dns import DnsConfig, Resolver, SyncResolver
from tests.support.dns_server import ZoneServer


@pytest.fixture
def zone() -> Iterator[ZoneServer]:
    with ZoneServer() as z:
        yield z


@pytest.fixture
async def sync(zone: ZoneServer) -> AsyncIterator[SyncResolver]:
    r = Resolver(DnsConfig(nameservers=[zone.address], timeout=0.3, lifetime=0.6))
    s = SyncResolver(r, asyncio.get_running_loop())
    await asyncio.sleep(0)
    yield s
    await r.close()
