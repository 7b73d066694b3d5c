"""Finding the real servers the integration tests need.

`make test` installs them; with CI=true a missing one is a failure, never a skip.
"""

from __future__ import annotations

import os
import shutil

import pytest


def require_binary(name: str, *candidates: str) -> str:
    for cand in (name, *candidates):
        path = shutil.which(cand) or (cand if os.path.isabs(cand) and os.access(cand, os.X_OK) else None)
        if path:
            return path
    msg = f"{name} is not installed (run `make test-deps`)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)
