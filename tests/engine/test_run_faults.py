"""Runs under faults (issue 9), with real worker threads on every store: a lost lease that
workflow code tries to swallow, an execution re-claimed while its old run is still in a
step, a run that never reaches a step boundary, a heartbeat racing a run's end, a
database failing under a checkpoint, a claim whose reply was lost, a worker restarted
with the same id, a process frozen between two steps. Each test failed on the code
before the fix. Waits are bounded; nothing asserts a wall-clock duration except where a
promise is about time (a timeout firing, shutdown returning), and then loosely."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

import hydra
from hydra.store.base import Claim, Lease, Store
from tests.waiting import wait_until

WAIT = 30  # seconds: a bound against hangs, not an expectation


class FaultyStore:
    """Wraps a store; each fault is a callable run around one method (tests set them)."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.before_heartbeat: Callable[[], None] | None = None
        self.fail_save_step: Callable[[str], bool] | None = None
        self.lose_claim_reply = 0  # this many claims commit, then "lose" their reply
        # Cleared: the heartbeat *thread* of worker ``frozen_worker`` waits (as if its
        # process were stopped); other workers and the run's own lease guard go on.
        self.heartbeats_open = threading.Event()
        self.heartbeats_open.set()
        self.frozen_worker: str | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def heartbeat(self, leases: Sequence[Lease], *, now_ms: int, lease_ms: int) -> list[str]:
        thread = threading.current_thread().name
        if (
            leases
            and leases[0].worker_id == self.frozen_worker
            and thread.startswith("hydra-heartbeat-")
        ):
            self.heartbeats_open.wait(WAIT)
        if self.before_heartbeat is not None:
            self.before_heartbeat()
        return self.inner.heartbeat(leases, now_ms=now_ms, lease_ms=lease_ms)

    def save_step(self, lease: Lease, step: Any, *, now_ms: int, lease_ms: int) -> None:
        if self.fail_save_step is not None and self.fail_save_step(step.name):
            raise OperationalError("UPDATE ...", {}, Exception("database is locked"))
        self.inner.save_step(lease, step, now_ms=now_ms, lease_ms=lease_ms)

    def claim(self, *args: Any, **kwargs: Any) -> list[Claim]:
        claims = self.inner.claim(*args, **kwargs)
        if claims and self.lose_claim_reply > 0:
            self.lose_claim_reply -= 1
            # Committed, but the reply never arrived: the worker sees a dropped connection.
            raise OperationalError(
                "UPDATE ...", {}, Exception("server closed the connection unexpectedly")
            )
        return claims


@pytest.fixture
def faulty(store_factory: Callable[[], Store]) -> FaultyStore:
    return FaultyStore(store_factory())


@pytest.fixture
def engine(faulty: FaultyStore) -> hydra.Engine:
    return hydra.Engine(faulty, namespace=f"t-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def make_worker(engine: hydra.Engine) -> Iterator[Callable[..., hydra.Worker]]:
    workers: list[hydra.Worker] = []

    def make(*workflows: hydra.Workflow[Any], start: bool = True, **options: Any) -> hydra.Worker:
        options.setdefault("poll_interval", 0.02)
        options.setdefault("heartbeat_interval", 0.2)
        options.setdefault("claim_timeout", 3)
        worker = hydra.Worker(engine, **options)
        for wf in workflows:
            worker.register(wf)
        if start:
            worker.start()
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        worker.shutdown(timeout=5)


class Ledger:
    """Counts step-body entries and other events (thread-safe)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def hit(self, name: str) -> str:
        with self._lock:
            self.counts[name] += 1
        return name


def test_a_lost_lease_stops_the_run_whatever_the_workflow_catches(
    engine: hydra.Engine,
    faulty: FaultyStore,
    make_worker: Callable[..., hydra.Worker],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A cancel from another process is seen only when a fenced write is refused: the run
    must stop there, though the workflow wraps every step in ``except Exception``."""
    caplog.set_level(logging.INFO, logger="hydra")  # the whole story, on failure
    ledger = Ledger()
    elsewhere = hydra.Engine(faulty.inner, namespace=engine.namespace)  # no local run

    class Swallowing(hydra.Workflow[None]):
        name = "swallowing"

        def run(self, ctx: hydra.WorkflowContext, req: None) -> str:
            for name in ("a", "b", "c", "d"):
                try:
                    hydra.step(ctx, name, lambda n=name: cancel_then(n))
                except Exception:
                    ledger.hit(f"caught-{name}")
            return "done"

    def cancel_then(name: str) -> str:
        ledger.hit(name)
        if name == "a":
            assert elsewhere.cancel(eid)
        return name

    worker = make_worker(Swallowing(), start=False, heartbeat_interval=10, claim_timeout=30)
    eid = engine.start_workflow("swallowing")
    # Started only now: a worker woken by the start could otherwise enter step "a" before
    # eid is assigned here (NameError in cancel_then, a retry, and "a" ran twice: seen in CI).
    worker.start()
    assert engine.wait(eid, timeout=WAIT).status == hydra.Status.CANCELLED
    wait_until(lambda: engine.get_execution(eid).worker_id is None, "the run to end")
    time.sleep(0.2)  # a run that went on would enter b within microseconds
    # Before the fix, b, c and d ran too (LeaseLostError was caught by the workflow).
    assert ledger.counts == Counter({"a": 1}), caplog.text


def test_a_run_is_tracked_by_its_lease_not_its_execution(
    engine: hydra.Engine, make_worker: Callable[..., hydra.Worker]
) -> None:
    """Cancel and retry an execution while its old run is still inside a step: the same
    worker claims it again; the old run's end must not untrack the new run (which then
    stopped heartbeating, was taken over while running, and ran the step twice at once)."""
    ledger = Ledger()
    release = [threading.Event(), threading.Event(), threading.Event()]

    class Slow(hydra.Workflow[None]):
        name = "slow"

        def run(self, ctx: hydra.WorkflowContext, req: None) -> str:
            return hydra.step(ctx, "slow", body)

    def body() -> str:
        n = ledger.counts["slow"]
        ledger.hit("slow")
        release[min(n, 2)].wait(WAIT)
        return "ok"

    worker = make_worker(Slow(), concurrency=2, heartbeat_interval=0.1, claim_timeout=1)
    eid = engine.start_workflow("slow", max_attempts=5)
    wait_until(lambda: ledger.counts["slow"] == 1, "the first run to enter the step")
    assert engine.cancel(eid)
    engine.retry(eid)
    wait_until(lambda: ledger.counts["slow"] == 2, "the second run to enter the step")
    release[0].set()  # the old run leaves its step, is fenced out and ends
    wait_until(lambda: worker.in_flight == 1, "the old run to end")
    time.sleep(2.5)  # > 2 x claim_timeout: an untracked run's lease would expire now
    assert ledger.counts["slow"] == 2, "the step body ran again beside its live run"
    release[1].set()
    done = engine.wait(eid, timeout=WAIT)
    assert (done.status, done.attempt) == (hydra.Status.COMPLETED, 2)
    assert ledger.counts["slow"] == 2


def test_a_run_that_never_reaches_a_step_fails_at_its_timeout_and_frees_its_slot(
    engine: hydra.Engine,
    make_worker: Callable[..., hydra.Worker],
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = threading.Event()

    class Spinning(hydra.Workflow[None]):
        name = "spinning"

        def run(self, ctx: hydra.WorkflowContext, req: None) -> None:
            while not stop.is_set():  # no step boundary, ever
                time.sleep(0.01)

    class Quick(hydra.Workflow[None]):
        name = "quick"

        def run(self, ctx: hydra.WorkflowContext, req: None) -> str:
            return hydra.step(ctx, "q", lambda: "q")

    metrics = hydra.Metrics()
    engine.use_metrics(metrics)
    worker = make_worker(Spinning(), Quick(), concurrency=1)
    try:
        spinning = engine.start_workflow("spinning", timeout=timedelta(seconds=1))
        wait_until(lambda: worker.in_flight == 1, "the spinning run to start")
        queued = engine.start_workflow("quick")
        failed = engine.wait(spinning, timeout=WAIT)
        assert failed.status == hydra.Status.FAILED
        assert failed.error_type == "WorkflowTimeoutError"
        assert "while its code was running" in (failed.error_message or "")
        assert failed.completed_at is not None and failed.started_at is not None
        late = (failed.completed_at - failed.started_at).total_seconds()
        assert 1.0 <= late < 3.0, f"failed {late:.2f} s after its start, timeout 1 s"
        # The slot was handed back: the queued execution runs at concurrency=1.
        assert engine.wait(queued, timeout=WAIT).status == hydra.Status.COMPLETED
        assert worker.abandoned_runs == 1
        wait_until(lambda: worker.in_flight == 0, "the queued run to leave its slot")
        assert "abandoned the run of" in caplog.text
        sample = metrics.registry.get_sample_value(
            "hydra_runs_abandoned_total",
            {"namespace": engine.namespace, "worker_id": worker.worker_id},
        )
        assert sample == 1
    finally:
        stop.set()


def test_shutdown_returns_in_time_with_a_run_stuck_in_workflow_code(
    engine: hydra.Engine, make_worker: Callable[..., hydra.Worker]
) -> None:
    stop = threading.Event()

    class Stuck(hydra.Workflow[None]):
        name = "stuck"

        def run(self, ctx: hydra.WorkflowContext, req: None) -> None:
            stop.wait(WAIT)

    worker = make_worker(Stuck(), concurrency=2)
    try:
        eid = engine.start_workflow("stuck")
        wait_until(lambda: worker.in_flight == 1, "the run to start")
        began = time.monotonic()
        worker.shutdown(timeout=1)
        took = time.monotonic() - began
        assert took < 3, f"shutdown(timeout=1) took {took:.1f} s"
        assert worker.in_flight == 0
        # Given back unfinished for another worker, no attempt used.
        row = engine.get_execution(eid)
        assert (row.status, row.attempt) == (hydra.Status.PENDING, 1)
        run_threads = [t for t in threading.enumerate() if t.name.startswith("hydra-run-")]
        assert all(t.daemon for t in run_threads), "a run thread would block the exit"
    finally:
        stop.set()


def test_no_lost_lease_warning_when_a_heartbeat_races_a_runs_end(
    engine: hydra.Engine,
    faulty: FaultyStore,
    make_worker: Callable[..., hydra.Worker],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The heartbeat takes its list of leases, the run completes, then the heartbeat's
    fenced extension finds the execution no longer running: not a lost lease."""

    class Short(hydra.Workflow[None]):
        name = "short"

        def run(self, ctx: hydra.WorkflowContext, req: None) -> str:
            hydra.step(ctx, "wait", lambda: time.sleep(0.03))
            return "ok"

    faulty.before_heartbeat = lambda: time.sleep(0.06)  # the run ends meanwhile
    make_worker(Short(), concurrency=4, heartbeat_interval=0.01)
    ids = [engine.start_workflow("short") for _ in range(12)]
    for eid in ids:
        assert engine.wait(eid, timeout=WAIT).status == hydra.Status.COMPLETED
    time.sleep(0.2)  # the last heartbeats come back
    warnings = [r.getMessage() for r in caplog.records if "lost the lease" in r.getMessage()]
    assert warnings == []


def test_a_database_failure_in_a_checkpoint_never_reaches_workflow_code(
    engine: hydra.Engine, faulty: FaultyStore, make_worker: Callable[..., hydra.Worker]
) -> None:
    """The checkpoint of b fails (the database locked past the store's retry window): the
    run stops, the workflow's ``except`` does not run, no attempt is used, and the
    execution resumes from its checkpoints (b's body runs again: it was in flight)."""
    ledger = Ledger()
    failures = [1]

    def fail_once(step: str) -> bool:
        if step == "b" and failures[0]:
            failures[0] -= 1
            return True
        return False

    class Compensating(hydra.Workflow[None]):
        name = "compensating"

        def run(self, ctx: hydra.WorkflowContext, req: None) -> str:
            try:
                hydra.step(ctx, "a", lambda: ledger.hit("a"))
                hydra.step(ctx, "b", lambda: ledger.hit("b"))
                hydra.step(ctx, "c", lambda: ledger.hit("c"))
            except Exception:
                hydra.step(ctx, "compensate", lambda: ledger.hit("compensate"))
                raise
            return "done"

    faulty.fail_save_step = fail_once
    make_worker(Compensating())
    eid = engine.start_workflow("compensating", max_attempts=1)
    done = engine.wait(eid, timeout=WAIT)
    assert (done.status, done.attempt, done.output) == (hydra.Status.COMPLETED, 1, "done")
    assert ledger.counts == Counter({"a": 1, "b": 2, "c": 1})
    assert [s.name for s in done.steps] == ["a", "b", "c"]


def test_a_claim_whose_reply_was_lost_costs_no_attempt(
    engine: hydra.Engine, faulty: FaultyStore, make_worker: Callable[..., hydra.Worker]
) -> None:
    """The claim committed but the worker never heard: its leases would wait out
    ``claim_timeout`` and then a takeover would use an attempt (with max_attempts=1, the
    execution failed). The worker gives them back at once instead."""
    ledger = Ledger()

    class One(hydra.Workflow[None]):
        name = "one"

        def run(self, ctx: hydra.WorkflowContext, req: None) -> str:
            return hydra.step(ctx, "s", lambda: ledger.hit("s"))

    faulty.lose_claim_reply = 1
    ids = [engine.start_workflow("one", max_attempts=1) for _ in range(3)]
    make_worker(One(), concurrency=4, claim_timeout=60, heartbeat_interval=5)
    for eid in ids:
        done = engine.wait(eid, timeout=10)  # far below claim_timeout
        assert (done.status, done.attempt) == (hydra.Status.COMPLETED, 1)
    assert ledger.counts["s"] == 3


def test_a_restarted_worker_resumes_its_own_executions_at_once(
    engine: hydra.Engine, faulty: FaultyStore, make_worker: Callable[..., hydra.Worker]
) -> None:
    """A process died holding leases; its replacement starts with the same worker id: it
    gives them back at once (no attempt used) instead of waiting out claim_timeout."""
    store = faulty.inner
    ids = [engine.start_workflow("one", max_attempts=1) for _ in range(2)]
    died = store.claim(
        engine.namespace,
        ["one"],
        "worker-a",
        now_ms=engine.clock.now_ms(),
        lease_ms=60_000,
        limit=10,
    )
    assert sorted(c.execution.id for c in died) == sorted(ids)

    class One(hydra.Workflow[None]):
        name = "one"

        def run(self, ctx: hydra.WorkflowContext, req: None) -> str:
            return hydra.step(ctx, "s", lambda: "s")

    make_worker(One(), worker_id="worker-a", claim_timeout=60)
    for eid in ids:
        done = engine.wait(eid, timeout=10)
        assert (done.status, done.attempt) == (hydra.Status.COMPLETED, 1)


def test_a_run_frozen_between_steps_past_its_lease_does_not_enter_the_next_step(
    engine: hydra.Engine, faulty: FaultyStore, make_worker: Callable[..., hydra.Worker]
) -> None:
    """The process is frozen (here: its run thread held between two steps and its
    heartbeats held, as SIGSTOP would) past its lease; another worker takes over. On
    waking, the run must not enter the next step's body, even though its heartbeat thread
    has not noticed anything yet."""
    ledger = Ledger()
    frozen = threading.Event()
    thaw = threading.Event()

    class TwoSteps(hydra.Workflow[None]):
        name = "two-steps"

        def run(self, ctx: hydra.WorkflowContext, req: None) -> str:
            hydra.step(ctx, "first", lambda: ledger.hit("first"))
            if ctx.worker_id == "frozen":
                faulty.heartbeats_open.clear()  # its heartbeat thread freezes too
                frozen.set()
                thaw.wait(WAIT)
            hydra.step(ctx, "second", lambda: ledger.hit(f"second-{ctx.worker_id}"))
            return ctx.worker_id

    faulty.frozen_worker = "frozen"
    # concurrency=1: its only slot is the frozen run's, so it claims nothing meanwhile.
    make_worker(
        TwoSteps(), worker_id="frozen", concurrency=1, claim_timeout=1, heartbeat_interval=0.1
    )
    eid = engine.start_workflow("two-steps", max_attempts=3)
    assert frozen.wait(WAIT)
    time.sleep(1.3)  # past its lease
    rescuer = make_worker(
        TwoSteps(), worker_id="rescuer", claim_timeout=1, heartbeat_interval=0.1, start=False
    )
    rescuer.start()
    done = engine.wait(eid, timeout=WAIT)
    assert (done.status, done.output) == (hydra.Status.COMPLETED, "rescuer")
    rescuer.shutdown(timeout=5)
    thaw.set()
    time.sleep(0.3)
    faulty.heartbeats_open.set()
    assert ledger.counts["second-frozen"] == 0, "the frozen run entered a step past its lease"
    assert ledger.counts["second-rescuer"] == 1


def test_an_async_step_that_blocks_the_loop_past_its_timeout_is_reported(
    engine: hydra.Engine,
    make_worker: Callable[..., hydra.Worker],
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Blocking(hydra.Workflow[None]):
        name = "blocking"

        async def run(self, ctx: hydra.WorkflowContext, req: None) -> str:
            async def body() -> str:
                time.sleep(1.2)  # blocks the event loop: wait_for cannot interrupt it
                return "late"

            return await hydra.step(ctx, "blocks", body, timeout=0.05)

    caplog.set_level(logging.WARNING, logger="hydra")
    make_worker(Blocking())
    eid = engine.start_workflow("blocking")
    engine.wait(eid, timeout=WAIT)
    assert any(
        "far past its timeout of 50 ms" in r.getMessage()
        and "blocked the event loop" in r.getMessage()
        for r in caplog.records
    ), caplog.text
