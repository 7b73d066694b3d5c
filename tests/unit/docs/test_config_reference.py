"""docs/config-reference.md is generated from the config dataclasses and must be current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_config_reference_is_current() -> None:
    r = subprocess.run([sys.executable, "scripts/gen-config-doc.py", "--check"], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, "run: .venv/bin/python scripts/gen-config-doc.py"
