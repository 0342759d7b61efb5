"""Retry policies, backoffs and durations: every accepted value computes and stores.

Old bugs: ``RetryPolicy(max_attempts=10**6)`` with a capped backoff raised OverflowError at
attempt 1,025 (``2.0 ** 1024`` as a float); ``workflow_backoff_ms`` built ``2 ** n`` for
any n; ``duration_ms(float('inf'))`` raised a raw OverflowError; an ``initial_backoff``
over 5 minutes was silently cut to the default ``max_backoff``.
"""

from __future__ import annotations

import math
import time
from datetime import timedelta

import pytest

import hydra
from hydra import clock, retry
from hydra.clock import duration_ms
from hydra.retry import MAX_WORKFLOW_BACKOFF_MS, workflow_backoff_ms

I32 = 2**31 - 1


def test_max_attempts_range() -> None:
    assert retry.MAX_ATTEMPTS == I32  # type: ignore[attr-defined,unused-ignore]
    assert hydra.RetryPolicy(max_attempts=I32).max_attempts == I32
    for bad in (0, -1, I32 + 1, 2**63, True, 1.0, "3", None):
        with pytest.raises((ValueError, TypeError), match="max_attempts"):
            hydra.RetryPolicy(max_attempts=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("multiplier", [2.0, 1.0000001, 1.5, 10, 1e300])
def test_step_backoff_never_overflows(multiplier: float) -> None:
    policy = hydra.RetryPolicy(
        max_attempts=I32,
        initial_backoff=timedelta(seconds=1),
        backoff_multiplier=multiplier,
        max_backoff=timedelta(hours=1),
    )
    start = time.perf_counter()
    waits = [policy.backoff_ms(n) for n in (1, 2, 1024, 1025, 1026, 10**6, I32)]
    assert time.perf_counter() - start < 0.1
    assert waits[0] == 1000
    assert all(1000 <= w <= 3_600_000 for w in waits)
    assert waits == sorted(waits)
    if multiplier >= 1.5:
        assert waits[3:] == [3_600_000] * 4


def test_step_backoff_values_unchanged_below_the_cap() -> None:
    policy = hydra.RetryPolicy(max_attempts=10, initial_backoff=timedelta(seconds=1))
    assert [policy.backoff_ms(n) for n in range(1, 11)] == [
        1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000, 300000
    ]  # fmt: skip
    zero = hydra.RetryPolicy(initial_backoff=timedelta(0), max_attempts=I32)
    assert zero.backoff_ms(I32) == 0


def test_workflow_backoff_never_overflows() -> None:
    start = time.perf_counter()
    assert workflow_backoff_ms(1000, 1) == 1000
    assert workflow_backoff_ms(1000, 3) == 4000
    for n in (64, 65, 1025, 10**6, I32):
        assert workflow_backoff_ms(1000, n) == MAX_WORKFLOW_BACKOFF_MS
    assert workflow_backoff_ms(0, I32) == 0
    assert time.perf_counter() - start < 0.1


def test_backoff_multiplier_must_be_finite_and_at_least_one() -> None:
    for bad in (math.inf, math.nan, 0.5, -2.0):
        with pytest.raises(ValueError, match="backoff_multiplier"):
            hydra.RetryPolicy(backoff_multiplier=bad)
    with pytest.raises(TypeError, match="backoff_multiplier"):
        hydra.RetryPolicy(backoff_multiplier="2")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad", [math.inf, -math.inf, math.nan, timedelta.max, timedelta(days=36526), 1e300]
)
def test_durations_reject_inf_nan_and_huge(bad: object) -> None:
    with pytest.raises(ValueError, match="sleep duration"):
        duration_ms(bad, "sleep duration")  # type: ignore[arg-type]


def test_duration_max_is_100_years_and_fits_after_now() -> None:
    MAX_DURATION_MS: int = clock.MAX_DURATION_MS  # type: ignore[attr-defined,unused-ignore]
    assert MAX_DURATION_MS == 36525 * 24 * 3600 * 1000
    assert duration_ms(timedelta(days=36525), "d") == MAX_DURATION_MS
    with pytest.raises(ValueError, match="100 years"):
        duration_ms(timedelta(days=36525, milliseconds=1), "d")
    # now + the longest duration still fits a signed 64-bit column
    assert time.time_ns() // 1_000_000 + MAX_DURATION_MS < 2**63


def test_max_backoff_defaults_to_5_minutes_or_100_times_initial() -> None:
    assert hydra.RetryPolicy().backoff_ms(100) == 300_000
    hour = hydra.RetryPolicy(initial_backoff=timedelta(hours=1), max_attempts=100)
    assert hour.backoff_ms(1) == 3_600_000, "an hour's initial backoff is not cut to 5 min"
    assert hour.backoff_ms(100) == 100 * 3_600_000
    explicit = hydra.RetryPolicy(
        initial_backoff=timedelta(hours=1), max_backoff=timedelta(hours=2), max_attempts=10
    )
    assert explicit.backoff_ms(10) == 7_200_000


def test_max_backoff_below_initial_backoff_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"max_backoff.*initial_backoff"):
        hydra.RetryPolicy(initial_backoff=timedelta(hours=1), max_backoff=timedelta(minutes=5))


@pytest.mark.parametrize("field", ["initial_backoff", "max_backoff"])
def test_policy_durations_reject_inf(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        hydra.RetryPolicy(**{field: math.inf})  # type: ignore[arg-type]


def test_a_negative_duration_is_shown_as_written() -> None:
    """Python shows timedelta(seconds=-1) as ``datetime.timedelta(days=-1,
    seconds=86399)``: the error says ``-1 s`` (issue 10)."""
    from hydra.testing import MemoryStore

    engine = hydra.Engine(MemoryStore())
    with pytest.raises(ValueError, match=r"^timeout must not be negative, got -1 s$"):
        engine.start_workflow("x", timeout=timedelta(seconds=-1))
    with pytest.raises(ValueError, match=r"^retry_backoff must not be negative, got -2.5 s$"):
        engine.start_workflow("x", retry_backoff=-2.5)
