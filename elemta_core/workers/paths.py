"""Where worker processes meet: per-worker admin sockets and spool temp dirs."""

from __future__ import annotations

from pathlib import Path

PRIMARY = 0


def worker_dir(state_dir: Path) -> Path:
    return state_dir / "workers"


def worker_socket(state_dir: Path, index: int) -> Path:
    return worker_dir(state_dir) / f"{index}.sock"
