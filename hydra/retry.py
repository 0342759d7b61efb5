"""Retry policies and backoff arithmetic."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta

from hydra.clock import duration_ms

# Workflow-level backoff doubles per attempt; past a day it stops growing.
MAX_WORKFLOW_BACKOFF_MS = 24 * 3600 * 1000
#: The most attempts a step or a workflow may have: attempt counts are stored in 32-bit
#: integer columns (PostgreSQL and MySQL ``INTEGER``).
MAX_ATTEMPTS = 2**31 - 1
#: ``max_backoff`` when not given: ``max(DEFAULT_MAX_BACKOFF, 100 * initial_backoff)``.
DEFAULT_MAX_BACKOFF = timedelta(minutes=5)


def validate_max_attempts(value: object) -> int:
    """``value`` if it is an int in ``[1, MAX_ATTEMPTS]`` (bool refused), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"max_attempts must be an int, got {value!r}")
    if not 1 <= value <= MAX_ATTEMPTS:
        raise ValueError(f"max_attempts must be between 1 and {MAX_ATTEMPTS}, got {value!r}")
    return value


@dataclass(frozen=True)
class RetryPolicy:
    """How often a step is tried and how long to wait between attempts.

    The wait before attempt ``n + 1`` is ``initial_backoff * backoff_multiplier ** (n - 1)``,
    capped at ``max_backoff``. ``max_backoff`` defaults to ``max(5 minutes, 100 *
    initial_backoff)``: 5 minutes for the default 1 s initial backoff, and never below
    the initial backoff itself; an explicit ``max_backoff`` below ``initial_backoff`` is a
    ``ValueError``. ``max_attempts`` is an int from 1 to 2**31 - 1; durations are at most
    100 years; ``backoff_multiplier`` is a finite number >= 1. Waits are durable: the
    execution sleeps in the database and no worker thread is held. Exceptions in
    ``non_retryable`` (and any ``hydra.NonRetryableError``) fail the step at once.
    """

    max_attempts: int = 3
    initial_backoff: timedelta = timedelta(seconds=1)
    backoff_multiplier: float = 2.0
    max_backoff: timedelta | None = None
    non_retryable: tuple[type[BaseException], ...] = field(default=())
    # Resolved once in __post_init__ (milliseconds): what backoff_ms computes with.
    _initial_ms: int = field(default=0, init=False, repr=False, compare=False)
    _cap_ms: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        validate_max_attempts(self.max_attempts)
        initial = duration_ms(self.initial_backoff, "initial_backoff")
        if self.max_backoff is None:
            cap = max(duration_ms(DEFAULT_MAX_BACKOFF, "max_backoff"), 100 * initial)
        else:
            cap = duration_ms(self.max_backoff, "max_backoff")
            if cap < initial:
                raise ValueError(
                    f"max_backoff ({self.max_backoff!r}) must not be less than "
                    f"initial_backoff ({self.initial_backoff!r})"
                )
        multiplier = self.backoff_multiplier
        if isinstance(multiplier, bool) or not isinstance(multiplier, (int, float)):
            raise TypeError(f"backoff_multiplier must be a number, got {multiplier!r}")
        if not math.isfinite(multiplier) or multiplier < 1:
            raise ValueError(f"backoff_multiplier must be finite and >= 1, got {multiplier!r}")
        for exc_type in self.non_retryable:
            if not (isinstance(exc_type, type) and issubclass(exc_type, BaseException)):
                raise TypeError(f"non_retryable takes exception types, got {exc_type!r}")
        object.__setattr__(self, "_initial_ms", initial)
        object.__setattr__(self, "_cap_ms", cap)

    def backoff_ms(self, failed_attempt: int) -> int:
        """The wait after attempt number ``failed_attempt`` (1-based) failed.

        Computed without ever building ``multiplier ** n`` past the cap, so any attempt
        number up to ``MAX_ATTEMPTS`` answers at once.
        """
        initial, cap = self._initial_ms, self._cap_ms
        exponent = max(failed_attempt - 1, 0)
        if exponent == 0 or initial == 0 or self.backoff_multiplier == 1:
            return min(initial, cap)
        # initial * m ** e >= cap  <=>  e * log(m) >= log(cap / initial)  (cap >= initial)
        if exponent * math.log(self.backoff_multiplier) >= math.log(cap / initial):
            return cap
        return int(min(initial * float(self.backoff_multiplier) ** exponent, cap))


DEFAULT_STEP_POLICY = RetryPolicy()


def workflow_backoff_ms(retry_backoff_ms: int, failed_attempt: int) -> int:
    """Exponential workflow-level backoff: ``retry_backoff * 2 ** (failed_attempt - 1)``,
    at most a day. The exponent is capped (2**37 ms is already over a day), so a huge
    attempt number never builds a huge integer."""
    exponent = min(max(failed_attempt - 1, 0), 40)
    return int(min(retry_backoff_ms * 2**exponent, MAX_WORKFLOW_BACKOFF_MS))
