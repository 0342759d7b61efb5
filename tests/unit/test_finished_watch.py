"""``FinishedWatch``: the engine's one listener for finished executions, with a fake listener.

The PostgreSQL side is covered by ``tests/engine/test_wait_listener.py``; here the relay's
rules are pinned down without a database: notifications wake the waits, a listener that
is down wakes them too (so they re-read), an idle listener is closed and the next wait
opens a new one, and a store without notifications is asked once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from hydra.finished import FinishedWatch

WAIT = 5.0


class FakeListener:
    """A listener whose ``wait`` answers what the test queues (blocking otherwise)."""

    def __init__(self, *, down: bool = False) -> None:
        self.down = down
        self.notify = threading.Event()
        self.closed = threading.Event()
        self.waits = 0

    def wait(self, timeout_s: float) -> bool:
        self.waits += 1
        if self.down:
            return False  # at once, as PostgresListener does after losing its connection
        got = self.notify.wait(timeout_s)
        self.notify.clear()
        return got

    def close(self) -> None:
        self.closed.set()


def _until(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_a_notification_wakes_the_waits() -> None:
    listener = FakeListener()
    woken = threading.Event()
    watch = FinishedWatch(lambda: listener, woken.set, idle_s=60)
    assert watch.join()
    try:
        assert not woken.wait(0.2)  # nothing finished yet
        listener.notify.set()
        assert woken.wait(WAIT)
    finally:
        watch.leave()
        watch.idle_s = 0.0  # let its relay thread end


def test_waits_share_the_listener_and_it_closes_when_idle() -> None:
    opened: list[FakeListener] = []

    def open_listener() -> FakeListener:
        opened.append(FakeListener())
        return opened[-1]

    watch = FinishedWatch(open_listener, lambda: None, idle_s=0.0)
    assert watch.join() and watch.join()
    assert len(opened) == 1
    watch.leave()
    time.sleep(0.2)
    assert not opened[0].closed.is_set()  # one wait still uses it
    watch.leave()
    assert opened[0].closed.wait(WAIT)  # idle: closed by its relay thread
    assert _until(lambda: watch.join())  # the next wait subscribes again...
    assert len(opened) == 2  # ...on a new listener
    watch.leave()


def test_a_listener_that_is_down_makes_the_waits_reread() -> None:
    listener = FakeListener(down=True)
    wakes = 0
    lock = threading.Lock()

    def wake() -> None:
        nonlocal wakes
        with lock:
            wakes += 1

    watch = FinishedWatch(lambda: listener, wake, idle_s=60)
    assert watch.join()
    try:
        # Notifications may be lost while it reconnects: the waits are told to re-read,
        # with a growing pause (10 ms, x1.5), not in a busy loop.
        assert _until(lambda: wakes >= 3)
        time.sleep(0.3)
        assert listener.waits < 40
    finally:
        watch.leave()
        watch.idle_s = 0.0  # let its relay thread end


def test_a_store_without_notifications_is_asked_once() -> None:
    asked = 0

    def open_listener() -> None:
        nonlocal asked
        asked += 1
        return None

    watch = FinishedWatch(open_listener, lambda: None)
    assert not watch.join()
    watch.leave()
    assert not watch.join()
    watch.leave()
    assert asked == 1


def test_a_listener_that_cannot_open_now_is_tried_again_by_the_next_wait() -> None:
    attempts = 0
    listener = FakeListener()

    def open_listener() -> FakeListener:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ConnectionError("database is restarting")
        return listener

    watch = FinishedWatch(open_listener, lambda: None, idle_s=60)
    assert not watch.join()  # this wait polls
    watch.leave()
    assert watch.join()  # the next one listens
    watch.idle_s = 0.0
    watch.leave()
    assert attempts == 2
    assert listener.closed.wait(WAIT)
