"""SQLite: while this process holds its write turn (and so SQLite's one write lock), the
cyclic garbage collector does not run (``hydra/store/sql/write_turn.py``).

Why it matters: a full collection walks every tracked object of the process, 60-90 ms for
a worker's 86,000 on the benchmark machine, in whichever thread allocates past the
threshold; a purge batch of 6 ms that collected while holding the turn held SQLite's
write lock for 94 ms, and a worker's claim waited as long (docs/benchmarks.md).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hydra.store.sql import SQLStore
from hydra.store.sql.driver import DriverPool
from hydra.store.sql.write_turn import WriteTurn


@pytest.fixture
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    try:
        yield
    finally:
        (gc.enable if was else gc.disable)()


def test_the_collector_is_off_while_a_turn_is_held(collector_on: None) -> None:
    turn = WriteTurn()
    with turn:
        assert not gc.isenabled()
        with turn:  # reentrant, as a nested write on one thread
            assert not gc.isenabled()
        assert not gc.isenabled(), "released with the outer turn still held"
    assert gc.isenabled()


def test_a_program_that_turned_the_collector_off_keeps_it_off() -> None:
    was = gc.isenabled()
    gc.disable()
    try:
        with WriteTurn():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        (gc.enable if was else gc.disable)()


def test_handing_the_turn_over_keeps_the_collector_off_for_the_next_holder(
    collector_on: None,
) -> None:
    turn = WriteTurn()
    waiting = threading.Event()
    seen: list[bool] = []

    def next_writer() -> None:
        waiting.set()
        with turn:
            seen.append(gc.isenabled())

    turn.acquire()
    other = threading.Thread(target=next_writer)
    other.start()
    assert waiting.wait(10)
    turn.release()
    other.join(10)
    assert seen == [False]
    assert gc.isenabled()


def test_a_turn_not_taken_changes_nothing(collector_on: None) -> None:
    turn = WriteTurn()
    held = threading.Event()
    done = threading.Event()

    def holder() -> None:
        with turn:
            held.set()
            done.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    assert held.wait(10)
    assert turn.acquire(blocking=False) is False
    done.set()
    t.join(10)
    assert gc.isenabled()


def test_a_forked_child_gets_a_free_turn_and_its_collector_back(collector_on: None) -> None:
    turn = WriteTurn()
    turn.acquire()  # held at the fork, by a thread the child does not have
    child = turn.for_forked_child()
    assert gc.isenabled()
    assert child.acquire(blocking=False)
    child.release()
    turn.release()
    assert gc.isenabled()


def test_the_sqlite_stores_writes_run_without_the_collector(
    tmp_path: Path, collector_on: None
) -> None:
    store = SQLStore(f"sqlite:///{tmp_path / 'gc.db'}", auto_migrate=True)
    try:
        driver = store._driver
        assert isinstance(driver, DriverPool)
        # On Core (a purge batch, a registration) and on the driver path (a claim).
        assert store._run(lambda conn: gc.isenabled(), write=True) is False
        assert store._run_hot(lambda tx: gc.isenabled(), write=True) is False
        # Reads take no turn.
        assert store._run(lambda conn: gc.isenabled(), write=False) is True
        assert gc.isenabled()

        def fails(conn: Any) -> None:
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            store._run(fails, write=True)
        assert gc.isenabled(), "a failed write left the collector off"
    finally:
        store.close()
