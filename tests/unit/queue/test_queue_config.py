"""The [queue] section: durations, schedule and limits, with errors that name the key."""

from __future__ import annotations

import random

import pytest

from elemta_core.config.errors import ConfigError
from elemta_core.config.loader import parse_config
from elemta_core.queue.config import parse_duration
from elemta_core.queue.runner import Schedule


def test_defaults_are_the_documented_schedule() -> None:
    q = parse_config({}).queue
    assert q.retry_seconds == (60, 300, 900, 3600, 10800, 21600)
    assert q.max_age_seconds == 5 * 86400
    assert q.delay_warning_seconds is None


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("15m", 900), ("6h", 21600),
                                           ("5d", 432000), ("1w", 604800), ("2", 2),
                                           ("0.5s", 0.5), ("250ms", 0.25)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration("k", text) == seconds


@pytest.mark.parametrize("queue, key", [
    ({"retry_schedule": []}, "queue.retry_schedule"),
    ({"retry_schedule": ["5 minutes"]}, "queue.retry_schedule[0]"),
    ({"retry_schedule": ["0s"]}, "queue.retry_schedule[0]"),
    ({"max_age": "forever"}, "queue.max_age"),
    ({"jitter": 1.5}, "queue.jitter"),
    ({"destination_concurrency": 0}, "queue.destination_concurrency"),
    ({"retry": ["1m"]}, "queue.retry"),
])
def test_errors_name_the_key(queue: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config({"queue": queue})
    assert e.value.key == key


def test_the_last_step_repeats_and_jitter_stays_in_bounds() -> None:
    s = Schedule(retry=(60.0, 300.0, 21600.0), jitter=0.1)
    rng = random.Random(7)
    for attempt, base in [(1, 60), (2, 300), (3, 21600), (4, 21600), (40, 21600)]:
        for _ in range(50):
            assert base * 0.9 <= s.next_delay(attempt, rng) <= base * 1.1
    assert Schedule(retry=(10.0,), jitter=0.0).next_delay(1, rng) == 10.0
