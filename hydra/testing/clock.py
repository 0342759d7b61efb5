"""``FakeClock``: virtual time that moves only when told."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from hydra.clock import duration_ms, from_ms, to_ms

DEFAULT_START = datetime(2030, 1, 1, tzinfo=UTC)


class FakeClock:
    """A clock for tests, modelled on ``trio.testing.MockClock``.

    Time starts at ``start`` (default 2030-01-01 00:00 UTC) and moves only through
    ``advance`` and ``set`` (``TestEnvironment.run_until_complete`` also jumps it to the
    next due time when nothing is runnable). Pass it as ``Engine(clock=...)``: leases,
    heartbeats, sleeps, backoffs and timeouts all read it. Thread-safe.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._ms = to_ms(start if start is not None else DEFAULT_START)
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        with self._lock:
            return self._ms

    def now(self) -> datetime:
        when = from_ms(self.now_ms())
        assert when is not None
        return when

    def advance(self, delta: timedelta | float) -> datetime:
        """Move forward by ``delta`` (a timedelta or seconds; never backwards)."""
        step = duration_ms(delta, "advance")
        with self._lock:
            self._ms += step
        return self.now()

    def set(self, when: datetime) -> datetime:
        """Jump to ``when``; time never goes backwards, so an earlier ``when`` is an error."""
        target = to_ms(when)
        with self._lock:
            if target < self._ms:
                raise ValueError(
                    f"FakeClock cannot go back from {from_ms(self._ms)} to {from_ms(target)}"
                )
            self._ms = target
        return self.now()

    def set_ms(self, target: int) -> None:
        """Jump to ``target`` Unix ms if it is later than now (used to skip idle time)."""
        with self._lock:
            self._ms = max(self._ms, target)

    def __repr__(self) -> str:
        return f"FakeClock({self.now().isoformat()})"
