"""What a run needs from its engine: ``Runtime``, and the process-local ``RunRegistry``.

``hydra.runner.execute`` takes a ``Runtime`` (store, clock, marshaller, observers,
logger, namespace, the payload limit and the run registry) rather than the whole
``Engine``: the engine builds one (``engine.runtime``), and the threaded ``Worker`` and
``hydra.testing.TestEnvironment`` hand it to every run.

``RunRegistry`` is everything about runs that only this process can know: the runs in
flight here (so that ``engine.cancel`` stops a local run at its next step at once), who
to wake when an execution is started (the engine's local workers), and who to tell when
one finishes (``engine.wait`` callers).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from hydra.clock import Clock
from hydra.errors import PayloadError
from hydra.events import Observers
from hydra.logs import HydraLogger
from hydra.marshal import Marshaller
from hydra.status import Status
from hydra.store.base import Claim, Store
from hydra.store.queues import QueueChecker


class Stoppable(Protocol):
    """A run in flight as the registry knows it (a ``hydra.runner.Run``)."""

    @property
    def execution_id(self) -> str: ...

    def mark_lost(self) -> None:
        """The lease is gone: the run stops at its next step boundary."""


class RunRegistry:
    """The runs of one engine in this process, and who wants to know about them.

    Thread-safe: workers' run threads, their pollers and any caller of the engine use it
    at once. ``finished`` is the condition ``engine.wait`` sleeps on (under it, a waiter
    re-reads the execution, so a finish between its read and its wait is not missed).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, Stoppable] = {}
        self._wake_callbacks: list[Callable[[], None]] = []
        #: notified (``notify_finished``) whenever a local run ends an execution
        self.finished = threading.Condition()

    # -- runs in flight -------------------------------------------------------------------
    def track(self, run: Stoppable) -> None:
        """``run`` is in flight here (the newest run of its execution)."""
        with self._lock:
            self._runs[run.execution_id] = run

    def untrack(self, run: Stoppable) -> None:
        """``run`` ended (a newer run of the same execution stays tracked)."""
        with self._lock:
            if self._runs.get(run.execution_id) is run:
                del self._runs[run.execution_id]

    def stop(self, execution_id: str) -> bool:
        """Tell the local run of ``execution_id``, if any, that its lease is gone (it was
        cancelled): it stops at its next step. True if there was one."""
        with self._lock:
            run = self._runs.get(execution_id)
        if run is None:
            return False
        run.mark_lost()
        return True

    # -- waking workers -------------------------------------------------------------------
    def add_wake_callback(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever an execution becomes runnable through this engine
        (started, retried): a local worker claims it at once instead of at its next poll."""
        with self._lock:
            self._wake_callbacks.append(callback)

    def remove_wake_callback(self, callback: Callable[[], None]) -> None:
        with self._lock:
            if callback in self._wake_callbacks:
                self._wake_callbacks.remove(callback)

    def wake_workers(self) -> None:
        with self._lock:
            callbacks = list(self._wake_callbacks)
        for callback in callbacks:
            callback()

    # -- finishing ------------------------------------------------------------------------
    def notify_finished(self) -> None:
        """Wake every ``engine.wait`` caller: an execution ended here (or was cancelled)."""
        with self.finished:
            self.finished.notify_all()


@dataclass(frozen=True, slots=True)
class PayloadLimit:
    """The largest encoded value stored (``Engine(max_payload_bytes=...)``, or the store's
    own lower limit) and what set it, for the error message."""

    limit: int
    source: str

    def check(self, data: bytes, what: str) -> bytes:
        """``data`` if it is within the limit, else ``PayloadError`` naming the size and
        the limit that applied (``what`` names the value)."""
        if len(data) > self.limit:
            raise PayloadError(
                f"{what} is {len(data)} bytes encoded, over the limit of "
                f"{self.limit} bytes set by {self.source}; it was not stored"
            )
        return data


@dataclass(frozen=True, slots=True)
class Runtime:
    """What a run of an execution uses: built by the engine (``engine.runtime``)."""

    store: Store
    clock: Clock
    marshaller: Marshaller
    #: the engine's observers (a fan-out: see ``hydra.events``)
    observers: Observers
    #: the engine's logger (``hydra`` by default)
    logger: HydraLogger
    namespace: str
    #: runs in flight in this process, wake callbacks, finish notification
    registry: RunRegistry
    payloads: PayloadLimit
    #: the queues a start may name (a child's ``queue=``); None: checked by a store read
    queues: QueueChecker | None = None

    def finished(self, claim: Claim, status: Status) -> None:
        """The execution of ``claim`` ended ``status`` here: tell the observers, then
        wake the engine's ``wait`` callers."""
        self.observers.run_finished(claim, status)
        self.registry.notify_finished()


__all__ = ["PayloadLimit", "RunRegistry", "Runtime", "Stoppable"]
