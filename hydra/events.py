"""What the execution loop tells the outside: ``hydra.Observer`` and its fan-out.

An engine holds a list of observers (``Engine(..., observers=[...])``,
``engine.add_observer``): hydra's metrics, the live view of ``hydra dev run``, the test
environment's history, and any of yours (say, one that reports failed executions to an
error tracker). Every event is handed to each of them in turn, on the thread that runs
the execution (see docs/observers.md).

An observer cannot break a run: an exception it raises is logged (once per observer and
event, on the ``hydra`` logger) and the run goes on, as do the other observers.

``RunHooks`` are the points in a step where ``hydra.testing`` injects crashes: unlike an
observer's, a hook's exception does propagate (a simulated crash must stop the run).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Any, Protocol

from hydra.status import Status
from hydra.store.base import Claim, Lease, StepRow


class Outcome(StrEnum):
    """How one run of an execution ended (what ``hydra.runner.execute`` returns)."""

    COMPLETED = "completed"
    FAILED = "failed"
    RETRY_SCHEDULED = "retry_scheduled"
    SUSPENDED = "suspended"
    LOST = "lost"
    RELEASED = "released"
    #: the database failed under the run: it stopped, wrote nothing more, and its
    #: execution was given back (or will be, once the database answers) with no attempt used
    INTERRUPTED = "interrupted"
    #: the code no longer matched the execution's history (``NonDeterminismError``): it
    #: was given back to be tried again later, with no attempt used
    PARKED = "parked"


@dataclass(frozen=True, slots=True)
class RunEnd:
    """How a run ended, as ``Observer.run_ended`` gets it."""

    #: how the run ended; None when it crashed: an exception hydra does not handle (a bug
    #: in hydra, a database answer it cannot place, a crash simulated by ``hydra.testing``)
    #: stopped it, and the lease was left to expire
    outcome: Outcome | None
    #: the error that ended it, if one did, as ``"TypeName"`` and message: the workflow's
    #: (failed, retry scheduled), the lease loss, the database failure (interrupted), the
    #: ``NonDeterminismError`` (parked), the crash
    error_type: str | None = None
    error_message: str | None = None
    #: the exception itself, where there was one (a timeout found at the claim, or an
    #: input that does not decode, has only the stored error above)
    exception: BaseException | None = None


class RunInfo(Protocol):
    """What observers and hooks see of a run in flight (a ``hydra.runner.Run``)."""

    @property
    def execution_id(self) -> str: ...

    @property
    def workflow_name(self) -> str: ...

    @property
    def namespace(self) -> str: ...

    @property
    def attempt(self) -> int:
        """The workflow attempt (1-based)."""

    @property
    def lease(self) -> Lease:
        """The run's lease; ``lease.worker_id`` names the worker running it."""

    @property
    def current_step(self) -> str | None:
        """The step whose body is running now, if any: asked from inside a step (its
        thread or task), that step; from elsewhere, the earliest-entered step still in
        flight (several run at once under ``hydra.gather``, see ``running_steps``)."""

    @property
    def running_steps(self) -> tuple[str, ...]:
        """Every step in flight now (entered, checkpoint not yet written), in the order
        they were entered."""

    @property
    def steps(self) -> Mapping[str, StepRow]:
        """The execution's checkpoints as this run knows them, by step name."""

    @property
    def lost(self) -> bool:
        """The run's lease is gone (taken over or cancelled): it stops at its next step."""


class RunHooks(Protocol):
    """Points in a step where ``hydra.testing`` injects crashes and counts step bodies."""

    def step_reached(self, run: RunInfo, step_name: str) -> None:
        """Before the step body is entered (after the replay check)."""

    def step_entered(self, run: RunInfo, step_name: str, attempt: int) -> None:
        """The step body is being entered (right before the function is called)."""

    def step_ran(self, run: RunInfo, step_name: str) -> None:
        """The step function returned or raised; nothing about it is recorded yet."""

    def step_returned(self, run: RunInfo, step_name: str) -> None:
        """The step function returned a value; its checkpoint is not written yet."""

    def checkpoint_written(self, run: RunInfo, name: str) -> None:
        """A receive, send or event checkpoint was written (with the message it took or
        stored, or the event), or a receive suspended; the workflow has not gone on yet."""


class Observer:
    """Receives the execution loop's events: subclass it and override what you need.

    Each method is called after the event was written to the store, on the thread
    running the execution (a worker's run thread; ``run_finished`` also on a worker's
    watchdog thread, for an execution that passed its timeout while its code ran; the
    test's thread in ``hydra.testing``; the step events of a ``hydra.gather`` branch in
    a sync workflow on that branch's own thread, several at once). Runs go on in
    parallel, so an observer must be thread-safe, and cheap: a run waits for it. An
    exception it raises is logged and ignored. ``claim.execution`` is the execution as
    claimed (its ``attempt``, ``input`` and timestamps at the start of the run).

    Three methods are hooks more than events: ``start_context`` returns what to store
    with a new execution, ``step_scope`` what to wrap a step body's call in, and
    ``run_ended`` closes every run, so that an observer can keep state per run (keyed by
    its lease: ``lease.execution_id`` and ``lease.token``) and know when to drop it.
    """

    def start_context(self, parent: RunInfo | None) -> Mapping[str, str] | None:
        """Propagation headers to store with an execution about to be created (a trace
        context: ``{"traceparent": ...}``), or None. ``parent`` is the run starting it
        as a child (``hydra.start_child``, on that run's thread), None for a start
        through the engine (on the caller's thread). The runs of the execution, on any
        worker, find them in ``claim.execution.trace_context`` (a JSON object). What
        every observer returns is merged, the first to name a header winning."""
        return None

    def execution_started(self, execution_id: str, workflow_name: str) -> None:
        """``start_workflow`` (or a cron slot) stored a new execution; not called when an
        ``idempotency_key`` named an existing one. Called on the thread that started it,
        after the row was committed, before any worker can have run it here."""

    def claimed(self, claim: Claim) -> None:
        """A worker claimed the execution (a takeover if ``claim.takeover``)."""

    def run_started(self, run: RunInfo, claim: Claim) -> None:
        """The workflow's code is about to be called (the input decoded)."""

    def run_finished(self, claim: Claim, status: Status) -> None:
        """The execution ended ``completed`` or ``failed`` (after its last attempt, a
        non-retryable error, a timeout, or an undecodable input)."""

    def run_retry_scheduled(self, claim: Claim) -> None:
        """The attempt failed and a later workflow attempt is scheduled."""

    def step_cached(self, run: RunInfo, name: str) -> None:
        """A completed step returned its checkpoint on replay (its body did not run)."""

    def step_scope(
        self, run: RunInfo, name: str, attempt: int
    ) -> AbstractContextManager[object] | None:
        """A step body is about to be called (its ``attempt``, 1-based): never for a
        checkpoint replayed. Return a context manager to wrap the call in, or None. It
        is entered on the thread (or asyncio task) that calls the body, right before,
        and exited there right after the body returned or raised (seeing its exception,
        which it cannot suppress), before anything is recorded: ``step_finished``
        follows unless the run stops first. What it sets in context variables is seen
        by the body (and by threads that a step's timeout runs it in)."""
        return None

    def step_finished(self, run: RunInfo, name: str, status: str, duration_ms: int) -> None:
        """A step body ran: ``status`` is ``"completed"`` or ``"failed"``."""

    def step_retry_scheduled(self, run: RunInfo, name: str) -> None:
        """A failed step attempt will run again after its backoff (the run suspends)."""

    def slept(self, run: RunInfo, name: str, wake_ms: int) -> None:
        """The execution suspended durably until ``wake_ms`` (Unix ms)."""

    def waiting(self, run: RunInfo, name: str, topic: str, deadline_ms: int | None) -> None:
        """The execution suspended in ``hydra.receive`` (checkpoint ``name``) until a
        message of ``topic`` arrives or ``deadline_ms`` (Unix ms; None: no deadline)."""

    def received(self, run: RunInfo, name: str, topic: str, waited_ms: int) -> None:
        """A ``hydra.receive`` took a message of ``topic``, ``waited_ms`` after the
        execution first reached it (0 when a message was already there)."""

    def wait_timed_out(self, run: RunInfo, name: str, topic: str) -> None:
        """A ``hydra.receive``'s deadline passed with no message (``WaitTimeoutError``)."""

    def message_sent(self, execution_id: str, topic: str, sender_id: str | None) -> None:
        """A message was stored for ``execution_id``: by ``engine.send`` (``sender_id``
        None, on the caller's thread) or by a run's ``hydra.send`` (its execution)."""

    def lease_lost(self, claim: Claim) -> None:
        """The run stopped: its lease was taken over or the execution cancelled."""

    def run_interrupted(self, claim: Claim) -> None:
        """The database failed under the run; the execution resumes with no attempt used."""

    def run_parked(self, claim: Claim, error: str) -> None:
        """The workflow's code no longer matched the execution's history
        (``NonDeterminismError``, its message ``error``): the execution was parked, to be
        tried again after a growing delay, with no attempt used."""

    def run_ended(self, claim: Claim, end: RunEnd) -> None:
        """The run is over, however it ended (``end``: completed, suspended, lost,
        crashed...): once per claim, after every other event of the run. On the run's
        thread; on the worker's watchdog or shutdown thread when the worker gave up on
        a run still in workflow code (past its timeout, its lease lost, or still going
        at ``shutdown``): if that thread ever comes back, its late events follow."""


#: the events an ``Observer`` receives, in the order its methods are declared
EVENTS: tuple[str, ...] = tuple(
    name
    for name, member in Observer.__dict__.items()
    if not name.startswith("_") and callable(member)
)


def _handler(observer: Any, event: str) -> Any:
    """``observer``'s method for ``event``, or None when it has none or did not override
    ``Observer``'s (which does nothing): such an observer is never called for it."""
    method = getattr(observer, event, None)
    if method is None or getattr(method, "__func__", None) is Observer.__dict__[event]:
        return None
    return method


class Observers:
    """The fan-out: hands every event to each observer, in the order they were added.

    Each event keeps the tuple of methods that do something (an observer that does not
    override an event costs nothing for it), rebuilt when an observer is added, so
    delivering an event takes no lock. An exception raised by an observer is logged on
    ``logger`` with its traceback, once per observer and event, and never reaches the
    run; the next observers still get the event.
    """

    def __init__(self, observers: Iterable[Observer] = (), logger: logging.Logger | None = None):
        self._logger = logger if logger is not None else logging.getLogger("hydra")
        self._lock = threading.Lock()
        self._all: tuple[Observer, ...] = ()
        self._reported: set[tuple[int, str]] = set()
        self._start_context: tuple[Any, ...] = ()
        self._execution_started: tuple[Any, ...] = ()
        self._claimed: tuple[Any, ...] = ()
        self._run_started: tuple[Any, ...] = ()
        self._run_finished: tuple[Any, ...] = ()
        self._run_retry_scheduled: tuple[Any, ...] = ()
        self._step_cached: tuple[Any, ...] = ()
        self._step_scope: tuple[Any, ...] = ()
        self._step_finished: tuple[Any, ...] = ()
        self._step_retry_scheduled: tuple[Any, ...] = ()
        self._slept: tuple[Any, ...] = ()
        self._waiting: tuple[Any, ...] = ()
        self._received: tuple[Any, ...] = ()
        self._wait_timed_out: tuple[Any, ...] = ()
        self._message_sent: tuple[Any, ...] = ()
        self._lease_lost: tuple[Any, ...] = ()
        self._run_interrupted: tuple[Any, ...] = ()
        self._run_parked: tuple[Any, ...] = ()
        self._run_ended: tuple[Any, ...] = ()
        for observer in observers:
            self.add(observer)

    def add(self, observer: Observer) -> None:
        """Hand every later event to ``observer`` too."""
        with self._lock:
            self._all = (*self._all, observer)
            for event in EVENTS:
                method = _handler(observer, event)
                if method is not None:
                    setattr(self, f"_{event}", (*getattr(self, f"_{event}"), method))

    def __iter__(self) -> Iterator[Observer]:
        return iter(self._all)

    def __len__(self) -> int:
        return len(self._all)

    def __repr__(self) -> str:
        return f"Observers({list(self._all)!r})"

    def _failed(self, method: Any, event: str, exc: Exception) -> None:
        observer = getattr(method, "__self__", method)
        key = (id(observer), event)
        with self._lock:
            if key in self._reported:
                return
            self._reported.add(key)
        self._logger.error(
            "observer %r raised in %s (%s: %s); the run went on without it (reported once "
            "per observer and event)",
            observer,
            event,
            type(exc).__name__,
            exc,
            exc_info=exc,
        )

    # One method per event, each a plain loop: this is on every step's path.
    def start_context(self, parent: RunInfo | None) -> dict[str, str]:
        """Every observer's headers for a new execution, merged (the first to name a
        header wins); empty when none has any."""
        carrier: dict[str, str] = {}
        for method in self._start_context:
            try:
                found = method(parent)
                for key, value in (found or {}).items():
                    if isinstance(key, str) and isinstance(value, str):
                        carrier.setdefault(key, value)
            except Exception as exc:
                self._failed(method, "start_context", exc)
        return carrier

    def execution_started(self, execution_id: str, workflow_name: str) -> None:
        for method in self._execution_started:
            try:
                method(execution_id, workflow_name)
            except Exception as exc:
                self._failed(method, "execution_started", exc)

    def claimed(self, claim: Claim) -> None:
        for method in self._claimed:
            try:
                method(claim)
            except Exception as exc:
                self._failed(method, "claimed", exc)

    def run_started(self, run: RunInfo, claim: Claim) -> None:
        for method in self._run_started:
            try:
                method(run, claim)
            except Exception as exc:
                self._failed(method, "run_started", exc)

    def run_finished(self, claim: Claim, status: Status) -> None:
        for method in self._run_finished:
            try:
                method(claim, status)
            except Exception as exc:
                self._failed(method, "run_finished", exc)

    def run_retry_scheduled(self, claim: Claim) -> None:
        for method in self._run_retry_scheduled:
            try:
                method(claim)
            except Exception as exc:
                self._failed(method, "run_retry_scheduled", exc)

    def step_cached(self, run: RunInfo, name: str) -> None:
        for method in self._step_cached:
            try:
                method(run, name)
            except Exception as exc:
                self._failed(method, "step_cached", exc)

    def step_scope(self, run: RunInfo, name: str, attempt: int) -> AbstractContextManager[object]:
        """What to wrap a step body's call in: every observer's scope, or nothing."""
        if not self._step_scope:
            return _NO_SCOPE
        return _Scopes(self, self._step_scope, (run, name, attempt))

    def step_finished(self, run: RunInfo, name: str, status: str, duration_ms: int) -> None:
        for method in self._step_finished:
            try:
                method(run, name, status, duration_ms)
            except Exception as exc:
                self._failed(method, "step_finished", exc)

    def step_retry_scheduled(self, run: RunInfo, name: str) -> None:
        for method in self._step_retry_scheduled:
            try:
                method(run, name)
            except Exception as exc:
                self._failed(method, "step_retry_scheduled", exc)

    def slept(self, run: RunInfo, name: str, wake_ms: int) -> None:
        for method in self._slept:
            try:
                method(run, name, wake_ms)
            except Exception as exc:
                self._failed(method, "slept", exc)

    def waiting(self, run: RunInfo, name: str, topic: str, deadline_ms: int | None) -> None:
        for method in self._waiting:
            try:
                method(run, name, topic, deadline_ms)
            except Exception as exc:
                self._failed(method, "waiting", exc)

    def received(self, run: RunInfo, name: str, topic: str, waited_ms: int) -> None:
        for method in self._received:
            try:
                method(run, name, topic, waited_ms)
            except Exception as exc:
                self._failed(method, "received", exc)

    def wait_timed_out(self, run: RunInfo, name: str, topic: str) -> None:
        for method in self._wait_timed_out:
            try:
                method(run, name, topic)
            except Exception as exc:
                self._failed(method, "wait_timed_out", exc)

    def message_sent(self, execution_id: str, topic: str, sender_id: str | None) -> None:
        for method in self._message_sent:
            try:
                method(execution_id, topic, sender_id)
            except Exception as exc:
                self._failed(method, "message_sent", exc)

    def lease_lost(self, claim: Claim) -> None:
        for method in self._lease_lost:
            try:
                method(claim)
            except Exception as exc:
                self._failed(method, "lease_lost", exc)

    def run_interrupted(self, claim: Claim) -> None:
        for method in self._run_interrupted:
            try:
                method(claim)
            except Exception as exc:
                self._failed(method, "run_interrupted", exc)

    def run_parked(self, claim: Claim, error: str) -> None:
        for method in self._run_parked:
            try:
                method(claim, error)
            except Exception as exc:
                self._failed(method, "run_parked", exc)

    def run_ended(self, claim: Claim, end: RunEnd) -> None:
        for method in self._run_ended:
            try:
                method(claim, end)
            except Exception as exc:
                self._failed(method, "run_ended", exc)


_NO_SCOPE: AbstractContextManager[object] = nullcontext()


class _Scopes:
    """The observers' scopes around one step body: entered in order, exited in reverse.
    One that raises (entering, making or leaving it) is logged as an observer's failure
    and left out; the body's own exception always goes on to the run."""

    __slots__ = ("_args", "_entered", "_methods", "_observers")

    def __init__(self, observers: Observers, methods: tuple[Any, ...], args: tuple[Any, ...]):
        self._observers = observers
        self._methods = methods
        self._args = args
        self._entered: list[tuple[Any, AbstractContextManager[object]]] = []

    def __enter__(self) -> None:
        for method in self._methods:
            try:
                scope = method(*self._args)
                if scope is not None:
                    scope.__enter__()
                    self._entered.append((method, scope))
            except Exception as exc:
                self._observers._failed(method, "step_scope", exc)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        while self._entered:
            method, scope = self._entered.pop()
            try:
                scope.__exit__(exc_type, exc, tb)
            except Exception as error:
                self._observers._failed(method, "step_scope", error)


__all__ = [
    "EVENTS",
    "Observer",
    "Observers",
    "Outcome",
    "RunEnd",
    "RunHooks",
    "RunInfo",
]
