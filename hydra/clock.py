"""Time as the engine sees it: Unix milliseconds from a clock that tests can replace.

One time base per database, not one per machine: every decision that compares times
written by different workers (lease expiry and takeover, wake times of sleeps and
backoffs, timeouts, cron slots) must use the same clock in every worker, or a worker whose
clock is a minute ahead takes over every live lease and wakes every sleeper early.
``Engine(store)`` therefore runs on ``DatabaseClock`` when the store has a server clock
(PostgreSQL, MySQL/MariaDB) and on ``SystemClock`` otherwise (SQLite and ``MemoryStore``,
whose users all share this machine's clock). ``hydra.testing.FakeClock`` replaces either.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
import weakref
from datetime import UTC, datetime, timedelta
from typing import Protocol, cast

log = logging.getLogger("hydra.clock")


class Clock(Protocol):
    """Where every time-dependent part of the engine reads the time."""

    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch."""
        ...

    def now(self) -> datetime:
        """The current time as an aware UTC datetime."""
        ...


class SystemClock:
    """This machine's wall clock: the time base where all workers share one machine."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def now(self) -> datetime:
        return datetime.now(UTC)


class DatabaseTime(Protocol):
    """What ``DatabaseClock`` needs of a store (``hydra.store.base.Store`` has it)."""

    def database_time_ms(self) -> int | None: ...


#: how often a ``DatabaseClock`` measures its offset again (follows a stepped or drifting
#: server clock, and this machine's monotonic clock drifting from it)
RESYNC_INTERVAL_S = 30.0
#: after a failed measurement (or one whose thread never reported), the next try
RETRY_INTERVAL_S = 5.0
#: samples per measurement; the one with the shortest round trip is kept
SAMPLES = 5
#: this machine's wall clock differing from the database's by more than this is logged
SKEW_WARNING_MS = 1000


class DatabaseClock:
    """The database server's clock, read without I/O: the time base shared by every
    worker of one database.

    ``now_ms()`` is ``time.monotonic_ns()`` plus an offset measured against
    ``store.database_time_ms()``: it never does I/O, never raises, and a step of this
    machine's wall clock (NTP, a VM resume, faketime, a wrong ``date``) never moves it.

    A measurement takes ``samples`` readings and keeps the one with the shortest round
    trip, taking the server's reading to be the midpoint of that round trip: its
    precision (``precision_ms``) is half that round trip plus 0.5 ms (the server's
    time comes in whole milliseconds), typically well under 1 ms on a LAN. The first
    measurement happens in the constructor; after that the offset is measured again
    every ``resync_interval`` seconds, so a server clock that is stepped or drifts is
    followed. A new offset replaces the one in use only if the two disagree by more than
    their precisions together: measurement noise never makes hydra's time jitter or step
    back, while a real step or drift of the server's clock is taken over.

    Re-measurements are started lazily by ``now_ms()`` once one is due and run on a
    short-lived daemon thread (the caller never waits; the thread ends after its few
    round trips). So the clock holds no thread between measurements and needs no
    ``close()``: ``Engine`` has none, and a clock no longer used simply stops measuring
    (a due measurement after the store was closed fails quietly). A failed measurement
    keeps the last offset, is logged once (a warning) until one succeeds again, and is
    retried after ``retry_interval`` seconds. If the very first measurement fails (the
    database is down), the clock runs on this machine's wall clock until one succeeds;
    ``measure_now=False`` skips the constructor's measurement (the first ``now_ms()``
    starts one in the background instead).
    """

    def __init__(
        self,
        store: DatabaseTime,
        *,
        resync_interval: float = RESYNC_INTERVAL_S,
        retry_interval: float = RETRY_INTERVAL_S,
        samples: int = SAMPLES,
        measure_now: bool = True,
    ) -> None:
        if samples < 1:
            raise ValueError(f"samples must be >= 1, got {samples}")
        self._store = store
        self._interval_ns = int(resync_interval * 1e9)
        self._retry_ns = int(retry_interval * 1e9)
        self._samples = samples
        # Until the first measurement: this machine's wall clock.
        self._offset_ns = time.time_ns() - time.monotonic_ns()
        self._precision_ns: int | None = None
        self._next_sync_ns = 0
        self._failing = False
        self._skew_logged = False
        self._apply_lock = threading.Lock()
        #: successful measurements so far (tests read it)
        self.measurements = 0
        _CLOCKS.add(self)
        if measure_now:
            self.resync()

    def __repr__(self) -> str:
        precision = self.precision_ms
        state = "not measured" if precision is None else f"±{precision:.2f} ms"
        return f"DatabaseClock({self._store!r}, {state})"

    # -- the Clock protocol ------------------------------------------------------------
    def now_ms(self) -> int:
        mono = time.monotonic_ns()
        if mono >= self._next_sync_ns:
            self._start_resync(mono)
        return (mono + self._offset_ns) // 1_000_000

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.now_ms() / 1000, tz=UTC)

    # -- state -------------------------------------------------------------------------
    @property
    def precision_ms(self) -> float | None:
        """How far ``now_ms()`` may be from the server's clock at the last measurement
        (half its round trip plus 0.5 ms); None until a measurement succeeded."""
        precision = self._precision_ns
        return None if precision is None else precision / 1e6

    @property
    def skew_ms(self) -> float:
        """This machine's wall clock minus the database's time (informational only)."""
        return (time.time_ns() - time.monotonic_ns() - self._offset_ns) / 1e6

    # -- measuring ---------------------------------------------------------------------
    def resync(self) -> bool:
        """Measure the offset now, in this thread; True if the measurement succeeded.

        Never raises: a failure keeps the offset in use (logged once until a success).
        """
        try:
            offset, precision = self._measure()
        except Exception as exc:
            self._next_sync_ns = time.monotonic_ns() + self._retry_ns
            if not self._failing:
                self._failing = True
                meanwhile = (
                    "keeping the last offset"
                    if self._precision_ns is not None
                    else "using this machine's clock"
                )
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                log.warning(
                    "cannot read the database's clock from %r (%s: %s); %s until it can",
                    self._store,
                    type(exc).__name__,
                    reason,
                    meanwhile,
                )
            return False
        self._apply(offset, precision)
        self.measurements += 1
        self._next_sync_ns = time.monotonic_ns() + self._interval_ns
        if self._failing:
            self._failing = False
            log.info("reading the database's clock from %r works again", self._store)
        self._log_skew()
        return True

    def _measure(self) -> tuple[int, int]:
        """(offset, precision) in ns from the sample with the shortest round trip."""
        best: tuple[int, int] | None = None
        for _ in range(self._samples):
            sent = time.monotonic_ns()
            server_ms = self._store.database_time_ms()
            received = time.monotonic_ns()
            if server_ms is None:
                raise RuntimeError("the store has no database clock")
            rtt = received - sent
            if best is None or rtt < best[1]:
                # The server read its clock somewhere in [sent, received]: take the
                # midpoint (off by at most rtt/2), and the middle of its whole millisecond.
                best = (server_ms * 1_000_000 + 500_000 - (sent + received) // 2, rtt)
        assert best is not None
        offset, rtt = best
        return offset, rtt // 2 + 500_000

    def _apply(self, offset: int, precision: int) -> None:
        with self._apply_lock:
            current = self._precision_ns
            if current is not None and abs(offset - self._offset_ns) <= precision + current:
                return  # agrees with the offset in use: keep it (no jitter, no step back)
            self._offset_ns = offset
            self._precision_ns = precision

    def _log_skew(self) -> None:
        skew = self.skew_ms
        if abs(skew) > SKEW_WARNING_MS and not self._skew_logged:
            self._skew_logged = True
            log.warning(
                "this machine's clock is %.1f s %s the database's; hydra uses the database's",
                abs(skew) / 1000,
                "ahead of" if skew > 0 else "behind",
            )
        elif abs(skew) <= SKEW_WARNING_MS:
            self._skew_logged = False

    def _start_resync(self, mono: int) -> None:
        # Pushed ahead first so that callers meanwhile do not start more measurements; if
        # this one never reports (its thread lost to a fork), the next is due then.
        self._next_sync_ns = mono + self._retry_ns
        # RuntimeError at interpreter shutdown: keep the offset.
        with contextlib.suppress(Exception):
            threading.Thread(target=self.resync, name="hydra-clock-sync", daemon=True).start()

    def _after_fork(self) -> None:
        self._apply_lock = threading.Lock()
        self._next_sync_ns = 0  # measure again in the child (its parent's thread is gone)


# Every DatabaseClock of this process, so a forked child can renew their locks.
_CLOCKS: weakref.WeakSet[DatabaseClock] = weakref.WeakSet()


def _clocks_after_fork() -> None:
    for clock in list(_CLOCKS):
        clock._after_fork()


os.register_at_fork(after_in_child=_clocks_after_fork)


def default_clock(store: object) -> Clock:
    """The time base for an engine on ``store`` when none is given.

    ``DatabaseClock(store)`` if the store reports a server clock (PostgreSQL,
    MySQL/MariaDB), ``SystemClock()`` if it has none (``database_time_ms()`` is None:
    SQLite, ``MemoryStore``, or a store without the method). A store whose database cannot
    be reached right now is taken to have one: the clock measures it when it is back.
    """
    probe = getattr(store, "database_time_ms", None)
    if probe is None:
        return SystemClock()
    try:
        first = probe()
    except Exception:
        # Unreachable now, so it is a database. Measured in the background from the
        # first reading on, rather than waiting here for a second failure.
        return DatabaseClock(cast(DatabaseTime, store), measure_now=False)
    if first is None:
        return SystemClock()
    return DatabaseClock(cast(DatabaseTime, store))


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
        raise ValueError(f"{what} must not be negative, got {_shown(value, seconds)}")
    if seconds > MAX_DURATION_MS / 1000:
        raise ValueError(f"{what} must be at most 100 years, got {_shown(value, seconds)}")
    return round(seconds * 1000)


def _shown(value: timedelta | float | int, seconds: float) -> str:
    """A duration as a person wrote it: ``-1 s``, not ``datetime.timedelta(days=-1,
    seconds=86399)`` (how Python shows a negative timedelta)."""
    if isinstance(value, timedelta):
        return f"{seconds:g} s"
    return f"{value!r} s" if math.isfinite(seconds) else repr(value)
