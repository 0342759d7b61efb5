"""Fixtures and helpers of the ``hydra.gather`` tests."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from hydra.store.base import Store
from hydra.testing import FakeClock, TestEnvironment

MakeEnv = Callable[..., TestEnvironment]
WAIT = 30  # seconds: a bound against hangs, never an expectation


@pytest.fixture
def make_env(store_factory: Callable[[], Store]) -> MakeEnv:
    def make(**options: Any) -> TestEnvironment:
        options.setdefault("namespace", f"gather-{uuid.uuid4().hex[:12]}")
        options.setdefault("clock", FakeClock(datetime(2030, 1, 1, tzinfo=UTC)))
        return TestEnvironment(store=store_factory(), **options)

    return make


class Calls:
    """Counts step-body entries and the bodies running at once (thread-safe)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.running = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def enter(self, name: str) -> int:
        """Count a body entry; the number of times ``name`` was entered so far."""
        with self._lock:
            self.counts[name] += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            return self.counts[name]

    def leave(self) -> None:
        with self._lock:
            self.running -= 1
