from __future__ import annotations

from builtin_plugins.ratelimit.gcra import US, Charge, gcra, used


def test_burst_then_one_per_interval() -> None:
    interval = 6 * US  # 10 per minute
    tat = None
    allowed = 0
    for _ in range(15):
        step = gcra(tat, 0.0, interval, 10, 1)
        if step.allowed:
            allowed += 1
            tat = step.tat
    assert allowed == 10
    refused = gcra(tat, 0.0, interval, 10, 1)
    assert not refused.allowed and refused.retry_us == interval
    # One interval later exactly one more passes.
    assert gcra(tat, interval, interval, 10, 1).allowed
    assert used(tat, 0.0, interval) == 10


def test_cost_above_burst_never_passes_and_hints_a_period() -> None:
    step = gcra(None, 0.0, 10.0, 100, 101)
    assert not step.allowed and step.retry_us == 1000.0


def test_per_period_defaults_burst_to_limit() -> None:
    c = Charge.per_period("k", "n", limit=120, period=60.0)
    assert c.burst == 120 and c.interval_us == 0.5 * US
