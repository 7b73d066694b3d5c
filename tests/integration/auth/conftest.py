from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.dns_server import ZoneServer


@pytest.fixture
def zone() -> Iterator[ZoneServer]:
    """A loopback DNS server the elemta under test is pointed at through [dns]."""
    with ZoneServer(ttl=60) as z:
        yield z


def dns_section(zone: ZoneServer) -> dict[str, object]:
    return {"nameservers": [zone.address], "timeout": 1.0, "lifetime": 2.0, "cache": False}
