from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from tests.support.server import ServerProcess, base_config


@pytest.fixture
def elemta_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Factory: start a real `elemta serve` with a config built from keyword sections."""
    started: list[ServerProcess] = []

    def make(start: bool = True, env: dict[str, str] | None = None, **sections: Any) -> ServerProcess:
        workdir = tmp_path / f"srv{len(started)}"
        workdir.mkdir()
        srv = ServerProcess(base_config(workdir, **sections), workdir, env or {})
        started.append(srv)
        return srv.start() if start else srv

    yield make
    for srv in started:
        srv.stop()
