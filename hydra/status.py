"""Execution and step statuses."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """An execution's status. ``completed``, ``failed`` and ``cancelled`` are terminal."""

    PENDING = "pending"
    RUNNING = "running"
    SLEEPING = "sleeping"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED})


class StepStatus(StrEnum):
    """A step record's status.

    Stored (what the runner writes and replays from):

    ``completed``: its result is checkpointed and is returned on every replay.
    ``retrying``: an attempt failed and another is due (the execution sleeps until then).
    ``failed``: every attempt failed; replay raises ``StepFailedError`` again.
    ``sleeping``: a durable sleep checkpoint (``hydra.sleep``); its output is the wake time.
    ``waiting``: a ``hydra.receive`` that found no message and suspended the execution
    (its topic and deadline in the step's detail); replaced by ``completed`` (the
    message, as its output) or ``timed_out`` when the execution comes back to it.
    ``timed_out``: a ``hydra.receive`` whose deadline passed first; replay raises
    ``WaitTimeoutError`` again.

    Read (what ``Engine.get_execution`` reports, derived by ``read_step_status`` from the
    stored status and the execution; never stored):

    ``slept``: a sleep the execution has moved past (or would move past, its wake time
    having come while a run is under way).
    ``cancelled``: a sleep, or a step between attempts, when the execution was cancelled
    before its wake time or its next attempt.
    ``interrupted``: the same, when the execution failed instead (its timeout passed, or
    its last attempt was used up by a crashed worker).

    A sleep the execution still waits on reads ``sleeping``, also once its wake time has
    passed (it is then overdue: no worker has picked the execution up yet).
    """

    COMPLETED = "completed"
    RETRYING = "retrying"
    FAILED = "failed"
    SLEEPING = "sleeping"
    WAITING = "waiting"
    TIMED_OUT = "timed_out"
    SLEPT = "slept"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


#: The step statuses the store holds; the others are derived when read.
STORED_STEP_STATUSES = frozenset(
    {
        StepStatus.COMPLETED,
        StepStatus.RETRYING,
        StepStatus.FAILED,
        StepStatus.SLEEPING,
        StepStatus.WAITING,
        StepStatus.TIMED_OUT,
    }
)


def read_step_status(
    stored: StepStatus,
    execution: Status,
    *,
    moved_past: bool,
    wake_ms: int | None,
    ended_ms: int | None,
    now_ms: int,
) -> StepStatus:
    """How a stored step record reads, given its execution.

    ``moved_past``: the execution has a checkpoint after this one. ``wake_ms``: a sleep's
    wake time. ``ended_ms``: when the execution ended (``completed_at``), if it did.
    Derived at read time, so rows written by any version of hydra read the same.
    """
    if stored == StepStatus.SLEEPING:
        return _sleep_status(execution, moved_past, wake_ms, ended_ms, now_ms)
    if stored == StepStatus.WAITING and execution.terminal:
        return _cut_short(execution)  # the message it waited for can no longer come
    if stored == StepStatus.RETRYING and execution in (Status.FAILED, Status.CANCELLED):
        return _cut_short(execution)  # no attempt is coming any more
    return stored


def _sleep_status(
    execution: Status, moved_past: bool, wake_ms: int | None, ended_ms: int | None, now_ms: int
) -> StepStatus:
    if moved_past or execution == Status.COMPLETED or wake_ms is None:
        return StepStatus.SLEPT
    if execution.terminal:
        if ended_ms is not None and ended_ms >= wake_ms:
            return StepStatus.SLEPT  # woke, then the workflow failed before its next step
        return _cut_short(execution)
    if execution == Status.SLEEPING:
        return StepStatus.SLEEPING  # what it waits on, overdue or not
    # Pending (a retry) or running: the run replays from the top and passes the sleep
    # once its wake time has come, or falls asleep again until then.
    return StepStatus.SLEPT if wake_ms <= now_ms else StepStatus.SLEEPING


def _cut_short(execution: Status) -> StepStatus:
    return StepStatus.CANCELLED if execution == Status.CANCELLED else StepStatus.INTERRUPTED
