"""A worker's slots and run threads: what holds one claimed execution, and the daemon
threads that run them (``hydra.Worker`` uses both)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from hydra.run import Run
from hydra.store.base import Claim, Lease

#: a run in flight is known by its lease: the same execution can be claimed again (after
#: a cancel and a retry) while an old run of it is still inside a step
RunKey = tuple[str, int]


def run_key(lease: Lease) -> RunKey:
    """The key of the run holding ``lease``."""
    return (lease.execution_id, lease.token)


@dataclass(eq=False)
class Slot:
    """One claimed execution holding one of the worker's ``concurrency`` slots."""

    claim: Claim
    claimed_at: int
    run: Run | None = None
    thread: threading.Thread | None = None
    #: when the watchdog first saw the run lost (monotonic ms), if it has
    lost_seen: int | None = None

    def attach(self, run: Run) -> None:
        """The run of this slot's claim has begun (``execute``'s ``on_run``)."""
        self.run = run


class RunThreads:
    """The run threads: daemon threads taking runs from a queue.

    Not a ``ThreadPoolExecutor``: its threads are joined at interpreter exit, so one run
    stuck in workflow code (a loop without a step) would keep the process alive forever
    and hold its slot. A stuck thread is *abandoned* instead: a new thread takes its
    place, and the stuck one exits if its run ever returns.
    """

    def __init__(self, size: int, prefix: str) -> None:
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._prefix = prefix
        self._lock = threading.Lock()
        self._live: set[threading.Thread] = set()
        self._abandoned: set[threading.Thread] = set()
        self._made = 0
        for _ in range(size):
            self._spawn()

    def _spawn(self) -> None:
        with self._lock:
            self._made += 1
            thread = threading.Thread(
                target=self._loop, name=f"{self._prefix}_{self._made}", daemon=True
            )
            self._live.add(thread)
        thread.start()

    def _loop(self) -> None:
        me = threading.current_thread()
        while True:
            task = self._queue.get()
            if task is None:
                return
            task()
            with self._lock:
                if me in self._abandoned:
                    self._abandoned.discard(me)
                    return  # its replacement took its place

    def submit(self, task: Callable[[], None]) -> None:
        self._queue.put(task)

    def abandon(self, thread: threading.Thread) -> None:
        """Give up on ``thread`` (stuck in workflow code): start a replacement."""
        with self._lock:
            if thread not in self._live:
                return
            self._live.discard(thread)
            self._abandoned.add(thread)
        self._spawn()

    @property
    def abandoned(self) -> int:
        """Abandoned threads still stuck in their run."""
        with self._lock:
            return len(self._abandoned)

    def shutdown(self) -> None:
        """Let every live thread exit once it is idle (queued runs are dropped)."""
        with self._lock:
            live = len(self._live)
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        for _ in range(live):
            self._queue.put(None)


__all__ = ["RunKey", "RunThreads", "Slot", "run_key"]
