"""Waiting for something another thread or process does, in tests."""

from __future__ import annotations

import time
from collections.abc import Callable

#: seconds: a bound against hangs, not an expectation of speed
DEFAULT_LIMIT = 20.0


def wait_until(
    condition: Callable[[], bool],
    what: str,
    limit: float = DEFAULT_LIMIT,
    interval: float = 0.005,
) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit:g} s waiting until {what}")
        time.sleep(interval)
