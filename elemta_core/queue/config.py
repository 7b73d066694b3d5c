"""The ``[queue]`` section: retry schedule, maximum age, per-destination limits, notices.

Durations are written as operators think of them (``"90s"``, ``"15m"``, ``"6h"``, ``"5d"``);
they are parsed once here so the scheduler only ever sees seconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from elemta_core.config.errors import ConfigError
from elemta_core.config.schema import check_positive

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")


def parse_duration(key: str, value: str) -> float:
    """``"90s"``, ``"15m"``, ``"6h"``, ``"5d"`` (a bare number is seconds) -> seconds."""
    m = _DURATION.match(value)
    if m is None:
        raise ConfigError(key, f"{value!r} is not a duration",
                          'write a number with a unit: "30s", "15m", "6h" or "5d"')
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


@dataclass
class QueueConfig:
    #: Wait before each retry; the last one repeats until ``max_age``.
    retry_schedule: list[str] = field(
        default_factory=lambda: ["1m", "5m", "15m", "1h", "3h", "6h"])
    #: Each wait is multiplied by a random factor in [1 - jitter, 1 + jitter].
    jitter: float = 0.1
    #: A message still undelivered after this long is bounced (DSN, "expired").
    max_age: str = "5d"
    #: Send one "delayed" DSN when a message has waited this long ("" = never).
    delay_warning: str = ""
    #: Simultaneous deliveries (and so connections) to one destination.
    destination_concurrency: int = 10
    #: Messages sent over one SMTP/LMTP connection before it is closed.
    connection_reuse: int = 100
    #: An idle cached connection is closed after this long.
    connection_idle: str = "5s"
    #: A message with more Received headers than this is a mail loop and is bounced.
    max_hops: int = 50
    #: Keep finished messages that had failed recipients in the ``failed`` queue.
    keep_failed: bool = False

    def validate(self) -> None:
        if not self.retry_schedule:
            raise ConfigError("retry_schedule", "is empty", 'give at least one wait, e.g. ["5m"]')
        for i, v in enumerate(self.retry_schedule):
            if parse_duration(f"retry_schedule[{i}]", v) <= 0:
                raise ConfigError(f"retry_schedule[{i}]", "must be longer than 0", 'use e.g. "1m"')
        if not 0 <= self.jitter < 1:
            raise ConfigError("jitter", f"{self.jitter} is out of range", "use 0 to 0.99, e.g. 0.1")
        if parse_duration("max_age", self.max_age) <= 0:
            raise ConfigError("max_age", "must be longer than 0", 'use e.g. "5d"')
        if self.delay_warning:
            parse_duration("delay_warning", self.delay_warning)
        parse_duration("connection_idle", self.connection_idle)
        for k in ("destination_concurrency", "connection_reuse", "max_hops"):
            check_positive(k, getattr(self, k))

    @property
    def retry_seconds(self) -> tuple[float, ...]:
        return tuple(parse_duration("retry_schedule", v) for v in self.retry_schedule)

    @property
    def max_age_seconds(self) -> float:
        return parse_duration("max_age", self.max_age)

    @property
    def delay_warning_seconds(self) -> float | None:
        return parse_duration("delay_warning", self.delay_warning) if self.delay_warning else None

    @property
    def connection_idle_seconds(self) -> float:
        return parse_duration("connection_idle", self.connection_idle)
