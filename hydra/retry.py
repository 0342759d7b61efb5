"""Retry policies and backoff arithmetic."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from hydra.clock import duration_ms

# Workflow-level backoff doubles per attempt; past a day it stops growing.
MAX_WORKFLOW_BACKOFF_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class RetryPolicy:
    """How often a step is tried and how long to wait between attempts.

    The wait before attempt ``n + 1`` is ``initial_backoff * backoff_multiplier ** (n - 1)``,
    capped at ``max_backoff``. Waits are durable: the execution sleeps in the database and
    no worker thread is held. Exceptions in ``non_retryable`` (and any
    ``hydra.NonRetryableError``) fail the step at once.
    """

    max_attempts: int = 3
    initial_backoff: timedelta = timedelta(seconds=1)
    backoff_multiplier: float = 2.0
    max_backoff: timedelta = timedelta(minutes=5)
    non_retryable: tuple[type[BaseException], ...] = field(default=())

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValueError(f"max_attempts must be an int >= 1, got {self.max_attempts!r}")
        duration_ms(self.initial_backoff, "initial_backoff")
        duration_ms(self.max_backoff, "max_backoff")
        if self.backoff_multiplier < 1:
            raise ValueError(f"backoff_multiplier must be >= 1, got {self.backoff_multiplier!r}")
        for exc_type in self.non_retryable:
            if not (isinstance(exc_type, type) and issubclass(exc_type, BaseException)):
                raise TypeError(f"non_retryable takes exception types, got {exc_type!r}")

    def backoff_ms(self, failed_attempt: int) -> int:
        """The wait after attempt number ``failed_attempt`` (1-based) failed."""
        initial = duration_ms(self.initial_backoff, "initial_backoff")
        cap = duration_ms(self.max_backoff, "max_backoff")
        wait = initial * self.backoff_multiplier ** max(failed_attempt - 1, 0)
        return int(min(wait, cap))


DEFAULT_STEP_POLICY = RetryPolicy()


def workflow_backoff_ms(retry_backoff_ms: int, failed_attempt: int) -> int:
    """Exponential workflow-level backoff: ``retry_backoff * 2 ** (failed_attempt - 1)``."""
    return int(min(retry_backoff_ms * 2 ** max(failed_attempt - 1, 0), MAX_WORKFLOW_BACKOFF_MS))
