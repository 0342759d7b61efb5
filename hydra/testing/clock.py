"""``FakeClock``: virtual time that moves when told, and optionally flows at a rate."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from hydra.clock import Clock, SystemClock, duration_ms, from_ms, to_ms

DEFAULT_START = datetime(2030, 1, 1, tzinfo=UTC)


class FakeClock:
    """A clock for tests, modelled on ``trio.testing.MockClock``.

    Time starts at ``start`` (default 2030-01-01 00:00 UTC) and moves through ``advance``
    and ``set`` (``TestEnvironment.run_until_complete`` also jumps it to the next due
    time when nothing is runnable). With ``rate`` above 0 it also flows: ``rate``
    virtual ms per ms of ``base`` (default: this machine's clock) since it was last set;
    ``hydra dev run --fast-forward`` runs on ``FakeClock(base.now(), rate=1, base=base)``
    over the engine's own clock and jumps it over idle time. Pass it as
    ``Engine(clock=...)``: leases, heartbeats, sleeps, backoffs and timeouts all read
    it. Thread-safe; time never goes backwards.
    """

    def __init__(
        self, start: datetime | None = None, *, rate: float = 0.0, base: Clock | None = None
    ) -> None:
        if not rate >= 0:
            raise ValueError(f"rate must be >= 0, got {rate!r}")
        self._rate = rate
        self._base: Clock = base if base is not None else SystemClock()
        self._lock = threading.Lock()
        # Virtual time is _ms at the instant base read _base_ms, plus what flowed since.
        self._ms = to_ms(start if start is not None else DEFAULT_START)
        self._base_ms = self._base.now_ms() if rate else 0
        self._skipped_ms = 0

    @property
    def rate(self) -> float:
        return self._rate

    def _now_locked(self) -> int:
        if not self._rate:
            return self._ms  # a frozen clock never reads its base
        return self._ms + int((self._base.now_ms() - self._base_ms) * self._rate)

    def _move_locked(self, target: int) -> None:
        """Re-anchor at ``target`` (not before now), counting the jump."""
        now = self._now_locked()
        if self._rate:
            self._base_ms = self._base.now_ms()
        self._ms = max(now, target)
        self._skipped_ms += self._ms - now

    def now_ms(self) -> int:
        with self._lock:
            return self._now_locked()

    def now(self) -> datetime:
        when = from_ms(self.now_ms())
        assert when is not None
        return when

    def advance(self, delta: timedelta | float) -> datetime:
        """Move forward by ``delta`` (a timedelta or seconds; never backwards)."""
        step = duration_ms(delta, "advance")
        with self._lock:
            self._move_locked(self._now_locked() + step)
        return self.now()

    def set(self, when: datetime) -> datetime:
        """Jump to ``when``; time never goes backwards, so an earlier ``when`` is an error."""
        target = to_ms(when)
        with self._lock:
            now = self._now_locked()
            if target < now:
                raise ValueError(
                    f"FakeClock cannot go back from {from_ms(now)} to {from_ms(target)}"
                )
            self._move_locked(target)
        return self.now()

    def set_ms(self, target: int) -> None:
        """Jump to ``target`` Unix ms if it is later than now (used to skip idle time)."""
        with self._lock:
            self._move_locked(target)

    @property
    def skipped_ms(self) -> int:
        """How far the clock was moved by hand (``advance``, ``set``, ``set_ms``): the
        time skipped, beyond what flowed at ``rate``."""
        with self._lock:
            return self._skipped_ms

    def __repr__(self) -> str:
        rate = f", rate={self._rate:g}" if self._rate else ""
        return f"FakeClock({self.now().isoformat()}{rate})"
