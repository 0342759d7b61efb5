"""``DatabaseClock``: the database's time, read without I/O, on a fake server we control.

``FakeServer`` plays a database on another machine: its clock is its own base plus the
(shared) monotonic clock, so patching this process's wall clock does not move it, and the
test can step it, slow its replies down or make it fail.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

import pytest

import hydra
from hydra.clock import DatabaseClock, SystemClock, default_clock
from hydra.store.sql import SQLStore
from hydra.testing import FakeClock
from hydra.testing.memory import MemoryStore
from tests.conftest import BackendStoreFactory
from tests.waiting import wait_until

HOUR_MS = 3_600_000


def real_ms() -> int:
    return time.time_ns() // 1_000_000


class FakeServer:
    """``database_time_ms`` of a server whose clock is ``offset_ms`` from ours (at the
    start), moving with the monotonic clock."""

    def __init__(self, offset_ms: int = 0) -> None:
        self._base_ms = real_ms() + offset_ms
        self._mono0 = time.monotonic_ns()
        self.fail = False
        self.calls = 0
        #: seconds each call waits before / after the server reads its clock
        self.delays: list[tuple[float, float]] = []
        self.lock = threading.Lock()

    def now_ms(self) -> int:
        return self._base_ms + (time.monotonic_ns() - self._mono0) // 1_000_000

    def step(self, ms: int) -> None:
        """Step the server's clock (an operator, NTP)."""
        self._base_ms += ms

    def database_time_ms(self) -> int | None:
        with self.lock:
            self.calls += 1
            before, after = self.delays.pop(0) if self.delays else (0.0, 0.0)
            if self.fail:
                raise ConnectionError("server closed the connection unexpectedly")
        time.sleep(before)
        value = self.now_ms()
        time.sleep(after)
        return value

    def __repr__(self) -> str:
        return "FakeServer()"


def close_to(actual: int, expected: int, within_ms: int = 5) -> bool:
    return abs(actual - expected) <= within_ms


def agrees(clock: DatabaseClock, server: FakeServer, within_ms: int = 3) -> bool:
    """The clock's reading lies between two of the server's (other threads may run
    between the reads)."""
    before = server.now_ms()
    reading = clock.now_ms()
    after = server.now_ms()
    return before - within_ms <= reading <= after + within_ms


def test_offset_is_measured_against_the_server() -> None:
    server = FakeServer(offset_ms=HOUR_MS)  # the database's clock is an hour ahead of ours
    clock = DatabaseClock(server)
    assert agrees(clock, server)
    assert close_to(clock.now_ms(), real_ms() + HOUR_MS)
    assert clock.precision_ms is not None and clock.precision_ms < 5
    assert abs(clock.skew_ms + HOUR_MS) < 5  # our wall clock is an hour behind it
    assert server.calls == 5  # one measurement: five samples
    # now() is now_ms() as an aware UTC datetime
    before, now, after = clock.now_ms(), clock.now(), clock.now_ms()
    assert now.tzinfo == UTC
    assert before - 1 <= now.timestamp() * 1000 <= after + 1


def test_the_fastest_sample_is_kept_and_its_midpoint_used() -> None:
    server = FakeServer()
    # Slow samples whose reply takes 40 ms after the server read its clock: their midpoint
    # would put us 20 ms behind. The last, fast one is kept.
    server.delays = [(0.0, 0.04)] * 4 + [(0.0, 0.0)]
    clock = DatabaseClock(server)
    assert agrees(clock, server, 3)
    assert clock.precision_ms is not None and clock.precision_ms < 3


def test_resync_follows_a_stepped_server_clock() -> None:
    server = FakeServer()
    clock = DatabaseClock(server, resync_interval=0.05)
    assert agrees(clock, server)
    for step_ms in (10_000, -25_000):
        server.step(step_ms)
        done = clock.measurements
        time.sleep(0.06)
        clock.now_ms()  # due: starts a measurement in the background and returns at once

        def measured(n: int = done) -> bool:
            return clock.measurements > n

        wait_until(measured, "the clock measured again")
        assert agrees(clock, server)


def test_measurement_noise_never_moves_the_time_back() -> None:
    server = FakeServer()
    clock = DatabaseClock(server)
    readings = []
    for i in range(40):
        # replies of varying speed: different samples, different midpoints
        server.delays = [(0.0, 0.001 * (i % 3)), (0.001 * (i % 2), 0.0)] * 3
        assert clock.resync()
        readings.append(clock.now_ms())
    assert readings == sorted(readings)
    assert close_to(readings[-1], server.now_ms())


def test_now_ms_does_no_io_between_measurements() -> None:
    server = FakeServer()
    clock = DatabaseClock(server)  # resyncs every 30 s
    calls = server.calls
    for _ in range(10_000):
        clock.now_ms()
    assert server.calls == calls


def test_a_failing_store_keeps_the_last_offset_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = FakeServer(offset_ms=-HOUR_MS)
    clock = DatabaseClock(server, resync_interval=0.01, retry_interval=0.01)
    server.fail = True
    with caplog.at_level(logging.INFO, logger="hydra.clock"):
        assert not clock.resync()
        # Background re-measurements fail too; now_ms() never raises and keeps the offset.
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            assert agrees(clock, server)
            time.sleep(0.005)
        calls = server.calls
        assert calls > 10  # it kept trying
        warnings = [r for r in caplog.records if r.getMessage().startswith("cannot read")]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        assert "ConnectionError" in warnings[0].getMessage()
        assert "keeping the last offset" in warnings[0].getMessage()

        server.fail = False
        server.step(5_000)
        wait_until(lambda: agrees(clock, server), "it measured again")
        assert any("works again" in r.getMessage() for r in caplog.records)


def test_a_database_down_at_start_means_local_time_until_it_is_back() -> None:
    server = FakeServer(offset_ms=HOUR_MS)
    server.fail = True
    clock = DatabaseClock(server)  # never raises
    assert clock.precision_ms is None
    assert close_to(clock.now_ms(), real_ms())
    server.fail = False
    assert clock.resync()
    assert agrees(clock, server)


def test_the_local_wall_clock_has_no_effect(monkeypatch: pytest.MonkeyPatch) -> None:
    server = FakeServer()
    clock = DatabaseClock(server)
    expected = server.now_ms()
    assert close_to(clock.now_ms(), expected)
    real_time, real_time_ns = time.time, time.time_ns
    # This machine's clock is stepped an hour ahead (NTP, faketime, a wrong `date`)...
    monkeypatch.setattr(time, "time", lambda: real_time() + 3600)
    monkeypatch.setattr(time, "time_ns", lambda: real_time_ns() + HOUR_MS * 1_000_000)
    assert agrees(clock, server)
    assert abs(clock.now().timestamp() * 1000 - server.now_ms()) < 5
    # ...and a measurement made meanwhile finds the same offset.
    assert clock.resync()
    assert agrees(clock, server)
    assert abs(clock.skew_ms - HOUR_MS) < 5
    # The wall clock patch did reach the rest of the process.
    assert SystemClock().now_ms() - server.now_ms() > HOUR_MS - 5


def test_skew_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="hydra.clock"):
        DatabaseClock(FakeServer(offset_ms=-60_000))
    assert [r.getMessage() for r in caplog.records] == [
        "this machine's clock is 60.0 s ahead of the database's; hydra uses the database's"
    ]


class ServerMemoryStore(MemoryStore):
    """A MemoryStore that reports a server clock (as a PostgreSQL store would)."""

    def __init__(self, server: FakeServer) -> None:
        super().__init__()
        self.server = server

    def database_time_ms(self) -> int | None:
        return self.server.database_time_ms()


def test_the_engine_picks_its_clock_by_store() -> None:
    assert isinstance(hydra.Engine(MemoryStore()).clock, SystemClock)
    assert isinstance(hydra.Engine(ServerMemoryStore(FakeServer())).clock, DatabaseClock)
    fake = FakeClock(datetime(2031, 1, 1, tzinfo=UTC))
    assert hydra.Engine(ServerMemoryStore(FakeServer()), clock=fake).clock is fake
    assert isinstance(default_clock(object()), SystemClock)  # a store without the method
    # A database down when the engine is made: one failed probe, no more waiting; the
    # clock runs on this machine's time and measures in the background once it is back.
    down = FakeServer(offset_ms=HOUR_MS)
    down.fail = True
    clock = default_clock(ServerMemoryStore(down))
    assert isinstance(clock, DatabaseClock)
    assert down.calls == 1 and clock.precision_ms is None
    down.fail = False
    down.delays = [(0.01, 0.01)] * 5  # slow enough to be sure the reading comes first
    # The first reading is this machine's time and starts a measurement in the background.
    assert close_to(clock.now_ms(), real_ms())
    wait_until(lambda: agrees(clock, down, 5), "the clock measured the database once back")


def test_the_engine_on_a_sql_store(sql_store_factory: BackendStoreFactory) -> None:
    store = sql_store_factory()
    assert isinstance(store, SQLStore)
    engine = hydra.Engine(store)
    if sql_store_factory.backend == "sqlite":
        assert isinstance(engine.clock, SystemClock)
        return
    assert isinstance(engine.clock, DatabaseClock)
    # The servers of the test suite run on this machine: the same time, to a few ms.
    assert abs(engine.clock.now_ms() - real_ms()) < 50
    assert engine.clock.precision_ms is not None and engine.clock.precision_ms < 20
    fake = FakeClock()
    assert hydra.Engine(store, clock=fake).clock is fake
    store.close()
    # A closed store: a measurement fails (it does not reconnect), the clock goes on.
    assert not engine.clock.resync()
    assert abs(engine.clock.now_ms() - real_ms()) < 50
