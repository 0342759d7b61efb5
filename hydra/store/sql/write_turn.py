"""A process's turn to write, where one write transaction at a time holds the whole
database (SQLite): a lock its writing threads take before ``BEGIN IMMEDIATE``.

Why a lock of our own: a writer that finds SQLite's database locked sleeps in SQLite's
busy handler (1, 2, 5, 10, 15, 20, 25 ms... per try) and may wake up long after the
lock was freed, while a thread waiting on a ``threading`` lock is handed it at once.

Why the turn holds off Python's cyclic garbage collector: a collection runs in whichever
thread allocates past its threshold, and a full one walks every tracked object of the
process (measured here: 62 ms for 86,000 objects, the size of a worker with SQLAlchemy
loaded). A thread that collects while holding the turn holds SQLite's write lock as long,
and every other writer, of this process and of any other on the file, waits: a purge batch
that takes 6 ms held the lock 65-94 ms this way (docs/benchmarks.md). So while a turn is
held, automatic collection is disabled; it is enabled again once no thread holds one, and
the collection that was due runs then, outside the database's lock. A turn lasts one
transaction (milliseconds, no user code), so nothing accumulates meanwhile.
"""

from __future__ import annotations

import gc
import threading
from types import TracebackType


class WriteTurn:
    """A reentrant lock whose holder runs without automatic garbage collection."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        # How many turns are held (one thread's nested turns, and for a moment two
        # threads' as one hands over to the next: see release), under _count_lock.
        self._held = 0
        self._count_lock = threading.Lock()
        # Whether collection was enabled when the first of the held turns was taken:
        # what to restore when the last one is released (a program that disabled the
        # collector itself keeps it disabled; one that switches it while a turn is held,
        # milliseconds, finds it as it was before the turn).
        self._was_enabled = False

    def acquire(self, blocking: bool = True) -> bool:
        """Take the turn (as ``threading.RLock.acquire``); True if taken."""
        if not self._lock.acquire(blocking):
            return False
        with self._count_lock:
            if self._held == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._held += 1
        return True

    def release(self) -> None:
        # The lock first: the next writer may take it (and count itself) before the
        # count below drops, in which case collection stays off for it.
        self._lock.release()
        with self._count_lock:
            self._held -= 1
            if self._held == 0 and self._was_enabled:
                gc.enable()

    def __enter__(self) -> WriteTurn:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def for_forked_child(self) -> WriteTurn:
        """In a process forked from this one: a new turn (the parent's threads, which may
        hold this one, do not exist here), and the collector enabled again if a turn held
        at the fork had disabled it."""
        if self._held > 0 and self._was_enabled:
            gc.enable()
        return WriteTurn()
