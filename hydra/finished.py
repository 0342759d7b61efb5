"""``FinishedWatch``: one LISTEN per engine for finished executions, shared by every wait.

On a store with notifications (PostgreSQL) a completion or cancel NOTIFYs the namespace's
"finished" channel. Opening a listener per ``engine.wait`` cost a connection checkout, a
LISTEN and an UNLISTEN (three round trips) on every call; instead the first wait opens one
listener and a daemon thread relays its notifications to the engine's condition variable,
which every wait blocks on. The listener closes once no wait has used it for ``idle_s``
seconds (an engine has no ``close()``), so an engine that stops waiting holds no
connection.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable

from hydra.store.base import WakeListener

log = logging.getLogger("hydra.engine")


class FinishedWatch:
    """Relays "finished" notifications to ``wake`` while any wait is interested."""

    def __init__(
        self,
        open_listener: Callable[[], WakeListener | None],
        wake: Callable[[], None],
        *,
        idle_s: float = 2.0,
    ) -> None:
        self._open_listener = open_listener
        self._wake = wake
        self.idle_s = idle_s
        self._lock = threading.Lock()
        self._listener: WakeListener | None = None
        self._waiters = 0
        self._last_left = 0.0
        self._unsupported = False

    def join(self) -> bool:
        """Register a wait; True if a listener is subscribed (from now on, a finish wakes
        the engine's waits), False if the waits must poll."""
        with self._lock:
            self._waiters += 1
            if self._listener is None and not self._unsupported:
                try:
                    listener = self._open_listener()
                except Exception as exc:  # e.g. the database is down: poll meanwhile
                    log.warning("cannot listen for finished executions: %s", exc)
                    return False
                if listener is None:
                    self._unsupported = True  # the store has no notifications at all
                    return False
                self._listener = listener
                threading.Thread(
                    target=self._relay, args=(listener,), name="hydra-finished", daemon=True
                ).start()
            return self._listener is not None

    def leave(self) -> None:
        """Unregister a wait (each ``join`` is paired with one ``leave``)."""
        with self._lock:
            self._waiters -= 1
            self._last_left = time.monotonic()

    def _relay(self, listener: WakeListener) -> None:
        pause = 0.01
        try:
            while True:
                started = time.monotonic()
                if listener.wait(0.5):
                    self._wake()
                    pause = 0.01
                elif time.monotonic() - started < 0.25:
                    # The listener is down (it reconnects on its next wait) and may have
                    # missed notifications: let the waits re-read, with a growing pause.
                    self._wake()
                    time.sleep(pause)
                    pause = min(pause * 1.5, 0.5)
                with self._lock:
                    if self._waiters == 0 and time.monotonic() - self._last_left > self.idle_s:
                        return
        finally:
            with self._lock:
                self._listener = None  # the next wait opens a new one
            with contextlib.suppress(Exception):
                listener.close()
            self._wake()  # a wait relying on this listener re-reads
