"""Cron slots are fired by the database's time, not by the worker machine's clock.

The store reports a server clock we control (as PostgreSQL or MySQL would); the worker's
wall clock (``time.time``, ``time.time_ns``) runs 60 s ahead of it. The job was
registered by a worker with a correct clock. A worker reading its own wall clock would
fire the next minute's slot 60 s early; hydra's engine fires it when the database's
clock reaches it.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import pytest

import hydra
from hydra.clock import DatabaseClock, from_ms, to_ms
from hydra.scheduler import CronScheduler
from hydra.testing.memory import MemoryStore

#: the database's time when the test starts: 30 s before a minute's slot
SERVER_START = datetime(2031, 3, 4, 12, 0, 30, tzinfo=UTC)
SLOT = datetime(2031, 3, 4, 12, 1, tzinfo=UTC)
SKEW_MS = 60_000


class ServerStore(MemoryStore):
    """A MemoryStore with a server clock: ``SERVER_START`` plus the monotonic time since
    the test began, stepped by ``advance``."""

    def __init__(self) -> None:
        super().__init__()
        self._base_ms = to_ms(SERVER_START)
        self._mono0 = time.monotonic_ns()

    def database_time_ms(self) -> int | None:
        return self._base_ms + (time.monotonic_ns() - self._mono0) // 1_000_000

    def advance(self, ms: int) -> None:
        self._base_ms += ms


class ServerClock:
    """A worker with a correct clock: reads the server's time directly."""

    def __init__(self, store: ServerStore) -> None:
        self.store = store

    def now_ms(self) -> int:
        value = self.store.database_time_ms()
        assert value is not None
        return value

    def now(self) -> datetime:
        when = from_ms(self.now_ms())
        assert when is not None
        return when


def test_a_worker_whose_clock_is_ahead_fires_slots_on_the_database_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = ServerStore()
    namespace = f"cron-{uuid.uuid4().hex[:12]}"
    fired: list[datetime] = []

    def handler(ctx: hydra.CronContext) -> None:
        fired.append(ctx.scheduled_at)

    # Registered by a worker whose clock is right (the stored definition's time is the
    # database's 12:00:30: slots from 12:01 on are due).
    correct = hydra.Engine(store, namespace=namespace, clock=ServerClock(store))
    correct.register_cron("* * * * *", "every-minute", handler)

    # This worker's machine runs 60 s ahead of the database: 12:01:30 on its wall clock.
    real_time_ns = time.time_ns
    database_ms = store.database_time_ms()
    assert database_ms is not None
    offset_ns = (database_ms + SKEW_MS) * 1_000_000 - real_time_ns()
    monkeypatch.setattr(time, "time_ns", lambda: real_time_ns() + offset_ns)
    monkeypatch.setattr(time, "time", lambda: (real_time_ns() + offset_ns) / 1e9)
    assert hydra.clock.SystemClock().now_ms() - to_ms(SERVER_START) >= SKEW_MS - 1000

    ahead = hydra.Engine(store, namespace=namespace)
    assert isinstance(ahead.clock, DatabaseClock)
    ahead.register_cron("* * * * *", "every-minute", handler)  # same definition: unchanged
    scheduler = CronScheduler(ahead, "worker-ahead")

    assert scheduler.tick() == 0, "fired a slot the database's clock has not reached"
    assert fired == []
    assert scheduler.next_due_ms() == to_ms(SLOT)

    # The database's clock reaches 12:01:00 (stepped 31 s here; the clock measures again).
    store.advance(31_000)
    assert ahead.clock.resync()
    assert scheduler.tick() == 1
    assert fired == [SLOT]
    last = store.last_cron_fire(namespace, "every-minute")
    assert last is not None and last.slot_at == to_ms(SLOT)
    # Recorded on the database's time, not on this machine's (60 s ahead).
    assert to_ms(SLOT) <= last.fired_at < to_ms(SLOT) + 5_000
