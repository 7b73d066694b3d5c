"""How a plugin's stderr lines become log records."""

from __future__ import annotations

import logging

import pytest

from elemta_core.external.process import log_level


@pytest.mark.parametrize(("line", "level", "text"), [
    ("ERROR db: cannot open", logging.ERROR, "db: cannot open"),
    ("WARNING: slow", logging.WARNING, "slow"),
    ("just text", logging.INFO, "just text"),
    ("ERROR", logging.INFO, "ERROR"),
    ('{"@level":"debug","@message":"plugin started","@timestamp":"t","path":"/s"}',
     logging.DEBUG, 'plugin started {"path": "/s"}'),
    ('{"@level":"error","@message":"boom"}', logging.ERROR, "boom"),
    ('{"@level": broken json', logging.INFO, '{"@level": broken json'),
])
def test_stderr_levels(line: str, level: int, text: str) -> None:
    assert log_level(line) == (level, text)
