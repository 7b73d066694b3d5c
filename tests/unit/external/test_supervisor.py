"""Supervisor policy that needs no process: backoff and unavailability."""

from __future__ import annotations

from pathlib import Path

import pytest

from elemta_core.external.catalog import parse_entry
from elemta_core.external.supervisor import State, Supervisor, backoff_delay
from elemta_core.hooks.context import HookContext
from elemta_core.hooks.pipeline import PluginUnavailable


def test_backoff_restarts_at_once_then_doubles_to_a_cap() -> None:
    assert [backoff_delay(n) for n in range(1, 6)] == [0.0, 0.1, 0.2, 0.4, 0.8]
    assert backoff_delay(50) == 10.0


async def test_calls_while_not_ready_fail_at_once(tmp_path: Path) -> None:
    entry = parse_entry({"name": "p", "command": ["x"], "sha256": {"x": "0" * 64}}, "k",
                        tmp_path, "")
    sup = Supervisor(entry, "h", tmp_path)
    for state in (State.STOPPED, State.STARTING, State.BACKOFF, State.DISABLED):
        sup._set(state, "it crashed")
        with pytest.raises(PluginUnavailable, match=f"plugin p is {state.value}: it crashed"):
            await sup.call(8, HookContext(session_id="s", peer_ip="::1"))
