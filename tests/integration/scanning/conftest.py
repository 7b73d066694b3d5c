"""A real Rspamd and a real clamd for the whole session, on free loopback ports, offline."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.clamd_server import ClamdServer
from tests.support.rspamd_server import RspamdServer
from tests.support.services import require_binary


@pytest.fixture(scope="session")
def rspamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RspamdServer]:
    binary = require_binary("rspamd")
    server = RspamdServer(binary, tmp_path_factory.mktemp("rspamd")).start()
    yield server
    server.stop()


#: clamd's StreamMaxLength in the tests: small, so the size limit is cheap to cross.
CLAMD_STREAM_MAX = 256 * 1024


@pytest.fixture(scope="session")
def clamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClamdServer]:
    binary = require_binary("clamd", "/usr/sbin/clamd")
    server = ClamdServer(binary, tmp_path_factory.mktemp("clamd"),
                         stream_max_length=CLAMD_STREAM_MAX).start()
    yield server
    server.stop()


@pytest.fixture
def own_clamd(tmp_path: Path) -> Iterator[Callable[[], ClamdServer]]:
    """A clamd of the test's own, to stop mid-test."""
    started: list[ClamdServer] = []

    def make() -> ClamdServer:
        server = ClamdServer(require_binary("clamd", "/usr/sbin/clamd"),
                             tmp_path / f"clamd{len(started)}").start()
        started.append(server)
        return server

    yield make
    for s in started:
        s.stop()


@pytest.fixture
def own_rspamd(tmp_path: Path) -> Iterator[Callable[[], RspamdServer]]:
    """An Rspamd of the test's own, to stop mid-test."""
    started: list[RspamdServer] = []

    def make() -> RspamdServer:
        server = RspamdServer(require_binary("rspamd"), tmp_path / f"rspamd{len(started)}").start()
        started.append(server)
        return server

    yield make
    for s in started:
        s.stop()
