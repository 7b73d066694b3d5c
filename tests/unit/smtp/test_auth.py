from __future__ import annotations

from elemta_core.smtp.auth import FailureThrottle


def test_throttle_counts_per_address_within_the_window() -> None:
    t = FailureThrottle(max_failures=3, window=60)
    for n in (1, 2):
        assert t.failed("192.0.2.1") == n
    assert t.blocked("192.0.2.1") == 0
    t.failed("192.0.2.1")
    assert t.blocked("192.0.2.1") == 3
    assert t.blocked("192.0.2.2") == 0
    t.window = 0  # an expired window forgets
    assert t.blocked("192.0.2.1") == 0
    assert FailureThrottle(max_failures=0, window=60).blocked("x") == 0  # 0 disables
