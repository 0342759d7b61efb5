"""Time as the engine sees it: Unix milliseconds from a clock that tests can replace."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Where every time-dependent part of the engine reads the time."""

    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch."""
        ...

    def now(self) -> datetime:
        """The current time as an aware UTC datetime."""
        ...


class SystemClock:
    """The real wall clock."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def now(self) -> datetime:
        return datetime.now(UTC)


def to_ms(when: datetime) -> int:
    """An aware datetime (naive ones are taken as UTC) as Unix milliseconds."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def from_ms(ms: int | None) -> datetime | None:
    """Unix milliseconds as an aware UTC datetime (None stays None)."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


#: The longest duration hydra accepts (sleeps, backoffs, timeouts, leases): 100 years.
#: Times are stored as signed 64-bit Unix milliseconds, and now plus this stays far
#: inside that range; a longer (or infinite) wait is almost surely a unit mistake.
MAX_DURATION_MS = 36525 * 24 * 3600 * 1000


def duration_ms(value: timedelta | float | int, what: str) -> int:
    """A duration given as a timedelta or as seconds, in milliseconds.

    Negative, infinite, NaN and longer than 100 years (``MAX_DURATION_MS``) are errors.
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except OverflowError:  # an int too large for a float
            seconds = math.copysign(math.inf, value)
    else:
        raise TypeError(f"{what} must be a timedelta or a number of seconds, not {value!r}")
    if math.isnan(seconds):
        raise ValueError(f"{what} must be a number of seconds, got {value!r}")
    if seconds < 0:
        raise ValueError(f"{what} must not be negative, got {value!r}")
    if seconds > MAX_DURATION_MS / 1000:
        raise ValueError(f"{what} must be at most 100 years, got {value!r}")
    return round(seconds * 1000)
