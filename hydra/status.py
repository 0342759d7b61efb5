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

    ``completed``: its result is checkpointed and is returned on every replay.
    ``retrying``: an attempt failed and another is due (the execution sleeps until then).
    ``failed``: every attempt failed; replay raises ``StepFailedError`` again.
    ``sleeping``: a durable sleep checkpoint (``hydra.sleep``); its output is the wake time.
    """

    COMPLETED = "completed"
    RETRYING = "retrying"
    FAILED = "failed"
    SLEEPING = "sleeping"
