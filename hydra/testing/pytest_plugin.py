"""pytest fixtures for testing workflows (registered through the ``pytest11`` entry point).

Importing this module has no side effects; it only defines fixtures:

- ``hydra_clock``: a ``FakeClock`` at 2030-01-01 00:00 UTC.
- ``hydra_store``: a ``MemoryStore`` on that clock.
- ``hydra_env``: a ``TestEnvironment`` on both (namespace ``test``, one simulated worker).
- ``crash_worker``: ``crash_worker(step, phase="during")`` kills the next worker of
  ``hydra_env`` that reaches that point (the same as ``hydra_env.crash``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from hydra.testing.clock import FakeClock
from hydra.testing.env import Phase, TestEnvironment
from hydra.testing.memory import MemoryStore


@pytest.fixture
def hydra_clock() -> FakeClock:
    """Virtual time that moves only when told."""
    return FakeClock()


@pytest.fixture
def hydra_store(hydra_clock: FakeClock) -> Iterator[MemoryStore]:
    """An empty in-memory store."""
    store = MemoryStore(hydra_clock)
    yield store
    store.close()


@pytest.fixture
def hydra_env(hydra_store: MemoryStore, hydra_clock: FakeClock) -> TestEnvironment:
    """A deterministic engine + simulated workers on ``hydra_store`` and ``hydra_clock``."""
    return TestEnvironment(store=hydra_store, clock=hydra_clock)


@pytest.fixture
def crash_worker(hydra_env: TestEnvironment) -> Callable[..., None]:
    """``crash_worker(step, phase="during")``: kill the next worker reaching that point."""

    def crash(step: str, phase: Phase = "during", *, execution_id: str | None = None) -> None:
        hydra_env.crash(step=step, phase=phase, execution_id=execution_id)

    return crash
