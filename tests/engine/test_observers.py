"""``hydra.Observer``: the engine's observers as a fan-out, on every store.

Every observer gets every event (in the order they were added), on the thread running
the execution; one that raises is logged once per observer and event and never breaks a
run nor keeps the others from their events."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable

import pytest

import hydra
import hydra.runner
from hydra.events import EVENTS, Observer, Observers, RunInfo
from hydra.status import Status
from hydra.store.base import Claim, Store
from hydra.testing import TestEnvironment

WAIT = 30  # seconds: a bound against hangs, not an expectation


class Recorder(hydra.Observer):
    """Records every event it gets, with the thread it got it on."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    def _add(self, event: str) -> None:
        with self._lock:
            self.events.append(event)
            self.threads.add(threading.current_thread().name)

    def execution_started(self, execution_id: str, workflow_name: str) -> None:
        self._add(f"started {workflow_name}")

    def claimed(self, claim: Claim) -> None:
        self._add("claimed")

    def run_started(self, run: RunInfo, claim: Claim) -> None:
        self._add("run_started")

    def step_finished(self, run: RunInfo, name: str, status: str, duration_ms: int) -> None:
        self._add(f"step {name} {status}")

    def run_finished(self, claim: Claim, status: Status) -> None:
        self._add(f"finished {status.value}")


class Raising(hydra.Observer):
    """Raises in every event."""

    def __init__(self) -> None:
        self.calls = 0

    def _boom(self) -> None:
        self.calls += 1
        raise RuntimeError("the tracker is down")

    def execution_started(self, execution_id: str, workflow_name: str) -> None:
        self._boom()

    def claimed(self, claim: Claim) -> None:
        self._boom()

    def run_started(self, run: RunInfo, claim: Claim) -> None:
        self._boom()

    def run_finished(self, claim: Claim, status: Status) -> None:
        self._boom()

    def run_retry_scheduled(self, claim: Claim) -> None:
        self._boom()

    def step_cached(self, run: RunInfo, name: str) -> None:
        self._boom()

    def step_finished(self, run: RunInfo, name: str, status: str, duration_ms: int) -> None:
        self._boom()

    def step_retry_scheduled(self, run: RunInfo, name: str) -> None:
        self._boom()

    def slept(self, run: RunInfo, name: str, wake_ms: int) -> None:
        self._boom()

    def lease_lost(self, claim: Claim) -> None:
        self._boom()

    def run_interrupted(self, claim: Claim) -> None:
        self._boom()


@hydra.workflow("observed")
def observed(ctx: hydra.WorkflowContext, n: int) -> int:
    one = hydra.step(ctx, "one", lambda: n + 1)
    return hydra.step(ctx, "two", lambda: one * 2)


@hydra.workflow("observed-failing")
def failing(ctx: hydra.WorkflowContext, _: None) -> None:
    raise hydra.NonRetryableError("no")


def test_observers_given_to_the_engine_get_the_events_of_a_worker_s_runs(
    store_factory: Callable[[], Store],
) -> None:
    first, second = Recorder(), Recorder()
    engine = hydra.Engine(
        store_factory(), namespace=f"t-{uuid.uuid4().hex[:12]}", observers=[first, second]
    )
    worker = hydra.Worker(engine, poll_interval=0.02, heartbeat_interval=0.5, claim_timeout=5)
    worker.register(observed)
    worker.start()
    try:
        eid = engine.start_workflow("observed", 1)
        assert engine.wait(eid, timeout=WAIT).output == 4
    finally:
        worker.shutdown(timeout=WAIT)
    expected = [
        "started observed",
        "claimed",
        "run_started",
        "step one completed",
        "step two completed",
        "finished completed",
    ]
    assert first.events == second.events == expected
    # The start on the caller's thread, the run's events on the worker's run thread.
    run_threads = first.threads - {threading.current_thread().name}
    assert run_threads and all(
        name.startswith(f"hydra-run-{worker.worker_id}") for name in run_threads
    )


def test_an_observer_that_raises_never_breaks_a_run_and_is_logged_once_per_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    raising, after = Raising(), Recorder()
    env = TestEnvironment(metrics=hydra.Metrics())
    env.engine.add_observer(raising)
    env.engine.add_observer(after)
    env.register(observed)
    env.register(failing)
    caplog.set_level(logging.ERROR, logger="hydra")

    first = env.start("observed", 1)
    assert env.run_until_complete(first).output == 4
    second = env.start("observed", 2)
    assert env.run_until_complete(second).output == 6
    bad = env.start("observed-failing")
    assert env.run_until_complete(bad).status == "failed"

    # started, claimed, run_started, run_finished; the steps
    assert raising.calls == 3 * 4 + 2 * 2
    assert after.events.count("finished completed") == 2  # later observers still called
    assert "finished failed" in after.events
    reports = [r for r in caplog.records if "raised in" in r.getMessage()]
    events = sorted(r.getMessage().split(" raised in ")[1].split(" ")[0] for r in reports)
    assert events == [
        "claimed",
        "execution_started",
        "run_finished",
        "run_started",
        "step_finished",
    ]
    assert all(r.exc_info is not None for r in reports)
    # The engine's own observers were not disturbed: metrics counted, waiters woken.
    assert env.engine.metrics is not None
    finished = env.engine.metrics.registry.get_sample_value(
        "hydra_workflows_completed_total",
        {"namespace": "test", "workflow": "observed", "status": "completed"},
    )
    assert finished == 2
    started = env.engine.metrics.registry.get_sample_value(
        "hydra_workflows_started_total", {"namespace": "test", "workflow": "observed"}
    )
    assert started == 2
    assert env.engine.wait(first, timeout=1).status == "completed"


def test_the_fan_out_has_a_method_for_every_event_and_skips_what_an_observer_ignores() -> None:
    assert set(EVENTS) == {
        "start_context",
        "execution_started",
        "claimed",
        "run_started",
        "run_finished",
        "run_retry_scheduled",
        "step_cached",
        "step_finished",
        "step_retry_scheduled",
        "slept",
        "waiting",
        "received",
        "wait_timed_out",
        "message_sent",
        "lease_lost",
        "run_interrupted",
        "run_parked",
        "step_scope",
        "run_ended",
    }
    for event in EVENTS:
        assert event in Observers.__dict__, event
    fan_out = Observers([Observer(), Recorder()])
    # The base class's no-op methods are never called; overridden ones are.
    assert fan_out._slept == ()
    assert len(fan_out._claimed) == 1
    assert len(fan_out) == 2


def test_add_observer_takes_only_an_observer() -> None:
    engine = TestEnvironment().engine
    with pytest.raises(TypeError, match=r"hydra\.Observer"):
        engine.add_observer(object())  # type: ignore[arg-type]


def test_the_old_import_paths_still_work() -> None:
    assert hydra.runner.Observer is hydra.Observer is Observer
    assert hydra.runner.Outcome.LOST.value == "lost"


def test_execution_started_comes_once_per_new_execution_on_the_starting_thread(
    store_factory: Callable[[], Store],
) -> None:
    recorder = Recorder()
    engine = hydra.Engine(
        store_factory(), namespace=f"t-{uuid.uuid4().hex[:12]}", observers=[recorder]
    )
    first = engine.start_workflow("observed", 1, idempotency_key="k")
    again = engine.start_workflow("observed", 1, idempotency_key="k")  # nothing new stored
    other = engine.start_workflow(observed, 2)
    assert first == again != other
    assert recorder.events == ["started observed", "started observed"]
    assert recorder.threads == {threading.current_thread().name}
