"""pytest fixtures for testing workflows (registered through the ``pytest11`` entry point).

Importing this module has no side effects; it only defines fixtures:

- ``hydra_clock``: a ``FakeClock`` at 2030-01-01 00:00 UTC.
- ``hydra_store``: a ``MemoryStore`` on that clock.
- ``hydra_env``: a ``TestEnvironment`` on both (namespace ``test``, one simulated worker).
- ``crash_worker``: ``crash_worker(step, phase="during")`` kills the next worker of
  ``hydra_env`` that reaches that point (the same as ``hydra_env.crash``).

A crash or pause armed on ``hydra_env`` that never fired fails a test that otherwise
passed (``UnfiredPlanError``, naming the steps that were reached): a misspelt step name
must not make a crash test pass without crashing anything.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator

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


#: the report of a test's call phase, kept on its item for the fixtures' teardown
_CALL_REPORT = pytest.StashKey[pytest.TestReport]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[_CALL_REPORT] = report
    return report


@pytest.fixture
def hydra_env(
    request: pytest.FixtureRequest, hydra_store: MemoryStore, hydra_clock: FakeClock
) -> Iterator[TestEnvironment]:
    """A deterministic engine + simulated workers on ``hydra_store`` and ``hydra_clock``.

    After a test that passed, a crash or pause armed on it that never fired is an error.
    """
    __tracebackhide__ = True  # an unfired plan's message is the report, not this code
    env = TestEnvironment(store=hydra_store, clock=hydra_clock)
    yield env
    report = request.node.stash.get(_CALL_REPORT, None)
    if report is not None and report.passed:
        env.assert_plans_fired()


@pytest.fixture
def crash_worker(hydra_env: TestEnvironment) -> Callable[..., None]:
    """``crash_worker(step, phase="during")``: kill the next worker reaching that point."""

    def crash(step: str, phase: Phase = "during", *, execution_id: str | None = None) -> None:
        hydra_env.crash(step=step, phase=phase, execution_id=execution_id)

    return crash
