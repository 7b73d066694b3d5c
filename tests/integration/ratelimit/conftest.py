from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.redis_server import RedisServer, start_server


@pytest.fixture(scope="module", params=["redis", "valkey"])
def kv_server(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real Redis, then a real Valkey: every test using it runs against both."""
    srv = start_server(request.param, tmp_path_factory.mktemp(request.param))
    yield srv
    srv.stop()


@pytest.fixture
def redis_only(tmp_path: Path) -> Iterator[RedisServer]:
    srv = start_server("redis", tmp_path / "redis")
    yield srv
    srv.stop()
