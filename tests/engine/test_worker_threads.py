"""Engine behaviour with real worker threads, on every store (memory, SQLite, PostgreSQL,
MariaDB). Waits are bounded; nothing asserts a wall-clock duration."""

from __future__ import annotations

import logging
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

import hydra
from hydra.store.base import Store

WAIT = 30  # seconds: a bound against hangs, not an expectation


@pytest.fixture
def store(store_factory: Callable[[], Store]) -> Store:
    return store_factory()


@pytest.fixture
def engine(store: Store) -> hydra.Engine:
    return hydra.Engine(store, namespace=f"t-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def make_worker(engine: hydra.Engine) -> Iterator[Callable[..., hydra.Worker]]:
    workers: list[hydra.Worker] = []

    def make(*workflows: hydra.Workflow[Any], **options: Any) -> hydra.Worker:
        options.setdefault("poll_interval", 0.02)
        options.setdefault("heartbeat_interval", 0.5)
        options.setdefault("claim_timeout", 5)
        worker = hydra.Worker(engine, **options)
        for wf in workflows:
            worker.register(wf)
        worker.start()
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        worker.shutdown(timeout=5)


class Calls:
    """Counts step-body entries (thread-safe)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def hit(self, name: str, value: Any = None) -> Any:
        with self._lock:
            self.counts[name] += 1
        return value


@dataclass
class Order:
    order_id: str
    amount: int


def test_three_steps_complete_each_body_once(
    engine: hydra.Engine, make_worker: Callable[..., hydra.Worker]
) -> None:
    calls = Calls()

    class ThreeSteps(hydra.Workflow[Order]):
        name = "three-steps"

        def run(self, ctx: hydra.WorkflowContext, req: Order) -> dict[str, Any]:
            assert isinstance(req, Order)
            a = hydra.step(ctx, "charge", lambda: calls.hit("charge", req.amount * 2))
            b = hydra.step(ctx, "reserve", lambda: calls.hit("reserve", f"r-{req.order_id}"))
            c = hydra.step(ctx, "ship", lambda: calls.hit("ship", [a, b]))
            return {"charged": a, "shipment": c}

    make_worker(ThreeSteps(), concurrency=2)
    eid = engine.start_workflow("three-steps", Order("o-1", 21))
    ex = engine.wait(eid, timeout=WAIT)
    assert ex.status == hydra.Status.COMPLETED, ex.error
    assert ex.output == {"charged": 42, "shipment": [42, "r-o-1"]}
    assert ex.attempt == 1
    assert calls.counts == {"charge": 1, "reserve": 1, "ship": 1}
    assert [(s.name, s.status, s.attempts) for s in ex.steps] == [
        ("charge", "completed", 1),
        ("reserve", "completed", 1),
        ("ship", "completed", 1),
    ]
    assert ex.input == {"order_id": "o-1", "amount": 21}
    assert ex.started_at is not None and ex.completed_at is not None


def test_fails_twice_then_succeeds_on_attempt_3_without_rerunning_steps(
    engine: hydra.Engine, make_worker: Callable[..., hydra.Worker]
) -> None:
    calls = Calls()
    attempts_seen: list[int] = []

    @hydra.workflow("flaky-workflow")
    def flaky(ctx: hydra.WorkflowContext, req: dict[str, Any]) -> str:
        hydra.step(ctx, "one", lambda: calls.hit("one", 1))
        hydra.step(ctx, "two", lambda: calls.hit("two", 2))
        attempts_seen.append(ctx.attempt)
        if ctx.attempt < 3:
            raise ConnectionError(f"upstream down on attempt {ctx.attempt}")
        return str(hydra.step(ctx, "three", lambda: calls.hit("three", "done")))

    make_worker(flaky)
    eid = engine.start_workflow("flaky-workflow", {}, max_attempts=3, retry_backoff=0.01)
    ex = engine.wait(eid, timeout=WAIT)
    assert ex.status == "completed", ex.error
    assert ex.attempt == 3
    assert attempts_seen == [1, 2, 3]
    assert calls.counts == {"one": 1, "two": 1, "three": 1}
    assert ex.output == "done"


def test_exhausted_attempts_fail_with_last_error(
    engine: hydra.Engine, make_worker: Callable[..., hydra.Worker]
) -> None:
    @hydra.workflow("always-fails")
    def always(ctx: hydra.WorkflowContext, req: None) -> None:
        raise ValueError(f"bad on {ctx.attempt}")

    make_worker(always)
    eid = engine.start_workflow("always-fails", None, max_attempts=2, retry_backoff=0.01)
    ex = engine.wait(eid, timeout=WAIT)
    assert (ex.status, ex.attempt) == ("failed", 2)
    assert ex.error == "ValueError: bad on 2"


def test_non_retryable_error_fails_at_once(
    engine: hydra.Engine, make_worker: Callable[..., hydra.Worker]
) -> None:
    calls = Calls()

    class Invalid(hydra.NonRetryableError):
        pass

    @hydra.workflow("non-retryable")
    def wf(ctx: hydra.WorkflowContext, req: None) -> None:
        calls.hit("run")
        raise Invalid("card declined")

    make_worker(wf)
    eid = engine.start_workflow("non-retryable", None, max_attempts=5, retry_backoff=0.01)
    ex = engine.wait(eid, timeout=WAIT)
    assert (ex.status, ex.attempt, calls.counts["run"]) == ("failed", 1, 1)
    assert ex.error == "Invalid: card declined"


def test_step_retries_with_backoff_then_succeeds(
    engine: hydra.Engine, make_worker: Callable[..., hydra.Worker]
) -> None:
    calls = Calls()

    def flaky_api() -> str:
        calls.hit("api")
        if calls.counts["api"] < 3:
            raise TimeoutError("api timed out")
        return "ok"

    policy = hydra.RetryPolicy(max_attempts=3, initial_backoff=timedelta(milliseconds=20))

    @hydra.workflow("step-retry")
    def wf(ctx: hydra.WorkflowContext, req: None) -> str:
        return hydra.step(ctx, "api", flaky_api, retry=policy)

    make_worker(wf)
    eid = engine.start_workflow("step-retry", None)
    ex = engine.wait(eid, timeout=WAIT)
    assert ex.status == "completed", ex.error
    assert ex.output == "ok"
    assert calls.counts["api"] == 3
    step = ex.step("api")
    assert step is not None and (step.status, step.attempts) == ("completed", 3)
    assert ex.attempt == 1  # step retries do not use workflow attempts


def test_step_failed_error_reaches_compensation(
    engine: hydra.Engine, make_worker: Callable[..., hydra.Worker]
) -> None:
    calls = Calls()

    def reserve() -> None:
        calls.hit("reserve")
        raise RuntimeError("out of stock")

    @hydra.workflow("compensating")
    def wf(ctx: hydra.WorkflowContext, req: None) -> dict[str, Any]:
        hydra.step(ctx, "charge", lambda: calls.hit("charge", "pay-1"))
        try:
            hydra.step(
                ctx,
                "reserve",
                reserve,
                retry=hydra.RetryPolicy(max_attempts=2, initial_backoff=timedelta(milliseconds=10)),
            )
        except hydra.StepFailedError as exc:
            hydra.step(ctx, "refund", lambda: calls.hit("refund", "refunded"))
            return {
                "refunded": True,
                "step": exc.step_name,
                "attempts": exc.attempts,
                "error": exc.last_error,
            }
        return {"refunded": False}

    make_worker(wf)
    eid = engine.start_workflow("compensating", None)
    ex = engine.wait(eid, timeout=WAIT)
    assert ex.status == "completed", ex.error
    assert ex.output == {
        "refunded": True,
        "step": "reserve",
        "attempts": 2,
        "error": "RuntimeError: out of stock",
    }
    assert calls.counts == {"charge": 1, "reserve": 2, "refund": 1}


def test_uncaught_step_failure_fails_the_execution_without_workflow_retries(
    engine: hydra.Engine, make_worker: Callable[..., hydra.Worker]
) -> None:
    calls = Calls()

    def broken() -> None:
        calls.hit("broken")
        raise hydra.NonRetryableError("invalid address")

    @hydra.workflow("uncaught")
    def wf(ctx: hydra.WorkflowContext, req: None) -> None:
        hydra.step(ctx, "broken", broken)

    make_worker(wf)
    eid = engine.start_workflow("uncaught", None, max_attempts=3, retry_backoff=0.01)
    ex = engine.wait(eid, timeout=WAIT)
    assert (ex.status, ex.attempt, calls.counts["broken"]) == ("failed", 1, 1)
    assert ex.error_type == "StepFailedError"
    assert "invalid address" in (ex.error or "")


def test_sleeping_execution_frees_its_worker_and_resumes(
    engine: hydra.Engine, make_worker: Callable[..., hydra.Worker]
) -> None:
    release = threading.Event()
    calls = Calls()

    @hydra.workflow("sleeper")
    def sleeper(ctx: hydra.WorkflowContext, req: None) -> str:
        hydra.step(ctx, "before", lambda: calls.hit("before"))
        hydra.sleep(ctx, timedelta(milliseconds=600))
        return str(hydra.step(ctx, "after", lambda: calls.hit("after", "woke")))

    @hydra.workflow("quick")
    def quick(ctx: hydra.WorkflowContext, req: None) -> str:
        return hydra.step(ctx, "only", lambda: "quick done")

    make_worker(sleeper, quick, concurrency=1)
    sleeping = engine.start_workflow("sleeper", None)
    # Wait until it is durably asleep: status sleeping, no owner.
    for _ in range(500):
        ex = engine.get_execution(sleeping)
        if ex.status == "sleeping":
            break
        release.wait(0.01)
    assert ex.status == "sleeping" and ex.worker_id is None and ex.sleep_until is not None
    # With concurrency 1, this can only run because the sleeper holds no thread.
    other = engine.wait(engine.start_workflow("quick", None), timeout=WAIT)
    assert other.status == "completed"
    assert engine.get_execution(sleeping).status == "sleeping"
    done = engine.wait(sleeping, timeout=WAIT)
    assert (done.status, done.output, done.attempt) == ("completed", "woke", 1)
    assert calls.counts == {"before": 1, "after": 1}
    assert done.completed_at is not None and ex.sleep_until is not None
    assert done.completed_at >= ex.sleep_until
    sleep_step = done.step("sleep-1")
    assert sleep_step is not None and sleep_step.status == "slept"


def test_async_workflow_with_sync_and_async_steps(
    engine: hydra.Engine, make_worker: Callable[..., hydra.Worker]
) -> None:
    @hydra.workflow("async-wf")
    async def wf(ctx: hydra.AsyncWorkflowContext, n: int) -> int:
        async def double() -> int:
            return n * 2

        a = await hydra.step(ctx, "double", double)
        await hydra.sleep(ctx, 0.05)
        b = await hydra.step(ctx, "plus-one", lambda: a + 1)
        return b

    make_worker(wf)
    ex = engine.wait(engine.start_workflow("async-wf", 20), timeout=WAIT)
    assert (ex.status, ex.output) == ("completed", 41)
    assert [s.name for s in ex.steps] == ["double", "sleep-1", "plus-one"]


def test_duplicate_step_name_fails_the_execution(
    engine: hydra.Engine, make_worker: Callable[..., hydra.Worker]
) -> None:
    @hydra.workflow("dupes")
    def wf(ctx: hydra.WorkflowContext, req: None) -> None:
        hydra.step(ctx, "same", lambda: 1)
        hydra.step(ctx, "same", lambda: 2)

    make_worker(wf)
    ex = engine.wait(engine.start_workflow("dupes", None, retry_backoff=0.01), timeout=WAIT)
    assert (ex.status, ex.error_type, ex.attempt) == ("failed", "DuplicateStepError", 1)


def test_timeout_fails_a_sleeping_execution(
    engine: hydra.Engine, make_worker: Callable[..., hydra.Worker]
) -> None:
    @hydra.workflow("too-slow")
    def wf(ctx: hydra.WorkflowContext, req: None) -> None:
        hydra.step(ctx, "first", lambda: 1)
        hydra.sleep(ctx, timedelta(hours=1))

    make_worker(wf)
    eid = engine.start_workflow("too-slow", None, timeout=timedelta(milliseconds=300))
    ex = engine.wait(eid, timeout=WAIT)
    assert (ex.status, ex.error_type) == ("failed", "WorkflowTimeoutError")


def test_cancel_stops_at_the_next_step(
    engine: hydra.Engine, make_worker: Callable[..., hydra.Worker]
) -> None:
    entered, proceed = threading.Event(), threading.Event()
    calls = Calls()

    def blocking() -> str:
        entered.set()
        proceed.wait(WAIT)
        return "finished"

    @hydra.workflow("cancellable")
    def wf(ctx: hydra.WorkflowContext, req: None) -> None:
        hydra.step(ctx, "blocking", blocking)
        hydra.step(ctx, "next", lambda: calls.hit("next"))

    make_worker(wf)
    eid = engine.start_workflow("cancellable", None)
    assert entered.wait(WAIT)
    assert engine.cancel(eid) is True
    proceed.set()
    ex = engine.wait(eid, timeout=WAIT)
    assert ex.status == "cancelled"
    assert calls.counts["next"] == 0
    assert engine.cancel(eid) is False  # already terminal
    # The blocked step's checkpoint never landed: the cancel fenced it out.
    assert ex.step("blocking") is None


def test_idempotency_key_returns_the_same_execution(engine: hydra.Engine) -> None:
    first = engine.start_workflow("anything", {"n": 1}, idempotency_key="order-42")
    again = engine.start_workflow("anything", {"n": 2}, idempotency_key="order-42")
    assert first == again
    assert len(engine.list_executions()) == 1
    assert engine.get_execution(first).input == {"n": 1}


def test_unknown_workflow_stays_pending(
    engine: hydra.Engine, make_worker: Callable[..., hydra.Worker]
) -> None:
    @hydra.workflow("known")
    def known(ctx: hydra.WorkflowContext, req: None) -> int:
        return 1

    make_worker(known)
    unknown = engine.start_workflow("nobody-runs-this", None)
    done = engine.wait(engine.start_workflow("known", None), timeout=WAIT)
    assert done.status == "completed"
    ex = engine.get_execution(unknown)
    assert (ex.status, ex.attempt, ex.error) == ("pending", 0, None)


def test_undecodable_payload_fails_that_execution_and_the_worker_goes_on(
    engine: hydra.Engine, make_worker: Callable[..., hydra.Worker]
) -> None:
    @hydra.workflow("typed")
    def typed(ctx: hydra.WorkflowContext, req: Order) -> int:
        return req.amount

    make_worker(typed)
    bad = engine.start_workflow("typed", {"order_id": "o", "amount": "lots"})
    good = engine.start_workflow("typed", Order("o", 3))
    ex = engine.wait(bad, timeout=WAIT)
    assert (ex.status, ex.error_type, ex.attempt) == ("failed", "PayloadError", 1)
    assert "amount" in (ex.error_message or "")
    assert engine.wait(good, timeout=WAIT).output == 3


def test_given_the_workflow_itself_a_start_refuses_an_input_its_code_cannot_decode(
    engine: hydra.Engine,
) -> None:
    """The same decode a worker makes before ``run``, before anything is stored; by name
    the input is stored unchecked (the previous test), since the code may live elsewhere."""

    @hydra.workflow("typed")
    def typed(ctx: hydra.WorkflowContext, req: Order) -> int:
        return req.amount

    with pytest.raises(hydra.PayloadError) as caught:
        engine.start_workflow(typed, {"order_id": "o", "amount": "lots"})
    assert str(caught.value).startswith(
        "workflow 'typed' takes Order, not {'order_id': 'o', 'amount': 'lots'}: "
    )
    assert "amount" in str(caught.value)
    assert str(caught.value).endswith("; nothing was stored")
    with pytest.raises(hydra.PayloadError, match=r"takes Order, not 'x{198}\u2026: "):
        engine.start_workflow(typed, "x" * 500)  # a long input is shortened in the message
    assert engine.list_executions() == []
    good = engine.start_workflow(typed, Order("o", 3))
    assert [e.id for e in engine.list_executions()] == [good]


def test_unencodable_payload_raises_and_stores_nothing(engine: hydra.Engine) -> None:
    with pytest.raises(hydra.PayloadError):
        engine.start_workflow("typed", {"when": object()})
    assert engine.list_executions() == []


def test_bad_arguments_are_rejected(engine: hydra.Engine) -> None:
    with pytest.raises(ValueError, match="retry_backoff"):
        engine.start_workflow("x", None, retry_backoff=-1)
    with pytest.raises(ValueError, match="timeout"):
        engine.start_workflow("x", None, timeout=timedelta(seconds=-5))
    with pytest.raises(ValueError, match="max_attempts"):
        engine.start_workflow("x", None, max_attempts=0)
    with pytest.raises(ValueError, match="workflow name"):
        engine.start_workflow("", None)
    with pytest.raises(ValueError, match="claim_timeout"):
        hydra.Worker(engine, claim_timeout=-1)
    with pytest.raises(ValueError, match="heartbeat_interval"):
        hydra.Worker(engine, heartbeat_interval=10, claim_timeout=5)
    with pytest.raises(ValueError, match="concurrency"):
        hydra.Worker(engine, concurrency=0)
    with pytest.raises(ValueError, match="max_attempts"):
        hydra.RetryPolicy(max_attempts=0)
    assert engine.list_executions() == []


def test_negative_sleep_fails_the_execution(
    engine: hydra.Engine, make_worker: Callable[..., hydra.Worker]
) -> None:
    @hydra.workflow("negative-sleep")
    def wf(ctx: hydra.WorkflowContext, req: None) -> None:
        hydra.sleep(ctx, -3)

    make_worker(wf)
    ex = engine.wait(engine.start_workflow("negative-sleep", None, max_attempts=1), timeout=WAIT)
    assert ex.status == "failed"
    assert ex.error_type == "ValueError" and "must not be negative" in (ex.error_message or "")


def test_unknown_execution_id(engine: hydra.Engine) -> None:
    for call in (engine.get_execution, engine.cancel, lambda e: engine.wait(e, timeout=1)):
        with pytest.raises(hydra.ExecutionNotFoundError, match="no execution 'nope'"):
            call("nope")


def test_run_at_delays_the_first_start(
    engine: hydra.Engine, make_worker: Callable[..., hydra.Worker]
) -> None:
    @hydra.workflow("later")
    def wf(ctx: hydra.WorkflowContext, req: None) -> str:
        return "ran"

    make_worker(wf)
    later = engine.clock.now() + timedelta(milliseconds=400)
    eid = engine.start_workflow("later", None, run_at=later)
    ex = engine.wait(eid, timeout=WAIT)
    assert ex.status == "completed"
    assert ex.started_at is not None and ex.started_at >= later - timedelta(milliseconds=1)


def test_graceful_shutdown_finishes_in_flight_runs(
    engine: hydra.Engine, make_worker: Callable[..., hydra.Worker]
) -> None:
    entered, proceed = threading.Event(), threading.Event()

    def slow() -> str:
        entered.set()
        proceed.wait(WAIT)
        return "finished"

    @hydra.workflow("in-flight")
    def wf(ctx: hydra.WorkflowContext, req: None) -> str:
        return hydra.step(ctx, "slow", slow)

    worker = make_worker(wf)
    eid = engine.start_workflow("in-flight", None)
    assert entered.wait(WAIT)
    stopper = threading.Thread(target=worker.shutdown)
    stopper.start()
    # Shutdown waits for the run: it has not finished, and no new work is claimed.
    later = engine.start_workflow("in-flight", None)
    proceed.set()
    stopper.join(WAIT)
    assert not stopper.is_alive()
    assert engine.get_execution(eid).status == "completed"
    assert engine.get_execution(later).status == "pending"


def test_shutdown_timeout_releases_unfinished_runs_without_using_an_attempt(
    engine: hydra.Engine, make_worker: Callable[..., hydra.Worker]
) -> None:
    entered, proceed = threading.Event(), threading.Event()

    def stuck() -> str:
        entered.set()
        proceed.wait(WAIT)
        return "late"

    @hydra.workflow("stuck")
    def wf(ctx: hydra.WorkflowContext, req: None) -> str:
        return hydra.step(ctx, "stuck", stuck)

    worker = make_worker(wf)
    eid = engine.start_workflow("stuck", None)
    assert entered.wait(WAIT)
    worker.shutdown(timeout=0.2)
    ex = engine.get_execution(eid)
    assert (ex.status, ex.attempt, ex.worker_id) == ("pending", 1, None)
    proceed.set()  # the abandoned thread's checkpoint must not land
    make_worker(
        hydra.workflow("stuck")(lambda ctx, req: hydra.step(ctx, "stuck", lambda: "second"))
    )
    done = engine.wait(eid, timeout=WAIT)
    assert (done.status, done.output, done.attempt) == ("completed", "second", 1)


def test_every_log_record_carries_the_execution_fields(
    engine: hydra.Engine, make_worker: Callable[..., hydra.Worker]
) -> None:
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect(level=logging.DEBUG)
    logger = logging.getLogger("hydra")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    try:

        @hydra.workflow("logged")
        def wf(ctx: hydra.WorkflowContext, req: None) -> None:
            ctx.logger.info("inside the workflow")
            hydra.step(ctx, "s", lambda: ctx.logger.info("inside a step"))

        make_worker(wf, worker_id="logging-worker")
        eid = engine.start_workflow("logged", None)
        assert engine.wait(eid, timeout=WAIT).status == "completed"
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert records
    for record in records:
        for field in ("execution_id", "workflow_name", "step_name", "attempt", "worker_id"):
            assert hasattr(record, field), (field, record.getMessage())
    by_message = {r.getMessage(): r for r in records}
    step_record = by_message["inside a step"]
    fields = ("execution_id", "workflow_name", "step_name", "attempt", "worker_id")
    assert tuple(getattr(step_record, f) for f in fields) == (
        eid,
        "logged",
        "s",
        1,
        "logging-worker",
    )
    assert by_message["inside the workflow"].__dict__["step_name"] is None


def test_a_worker_of_the_same_engine_is_woken_directly(
    engine: hydra.Engine, make_worker: Callable[..., hydra.Worker]
) -> None:
    @hydra.workflow("wake-direct")
    def wf(ctx: hydra.WorkflowContext, req: None) -> str:
        return "woken"

    # Polling alone would take ~60 s; the bound below only holds if the worker is woken.
    make_worker(wf, poll_interval=60)
    ex = engine.wait(engine.start_workflow("wake-direct", None), timeout=15)
    assert ex.output == "woken"


def test_notify_wakes_a_worker_in_another_engine(
    store: Store, engine: hydra.Engine, make_worker: Callable[..., hydra.Worker]
) -> None:
    if not store.supports_notify:
        pytest.skip("the store has no cross-process notifications (supports_notify=False)")

    @hydra.workflow("wake-notify")
    def wf(ctx: hydra.WorkflowContext, req: None) -> str:
        return "notified"

    make_worker(wf, poll_interval=60)
    other = hydra.Engine(store, namespace=engine.namespace)  # as if in another process
    ex = other.wait(other.start_workflow("wake-notify", None), timeout=15)
    assert ex.output == "notified"


def test_retry_reruns_a_failed_execution_from_its_checkpoints(
    engine: hydra.Engine, make_worker: Callable[..., hydra.Worker]
) -> None:
    calls = Calls()
    fixed = threading.Event()

    def fragile() -> str:
        calls.hit("fragile")
        if not fixed.is_set():
            raise hydra.NonRetryableError("bad config")
        return "fine"

    @hydra.workflow("retry-me")
    def wf(ctx: hydra.WorkflowContext, req: None) -> str:
        hydra.step(ctx, "first", lambda: calls.hit("first", 1))
        return hydra.step(ctx, "fragile", fragile)

    make_worker(wf)
    eid = engine.start_workflow("retry-me", None, max_attempts=1)
    assert engine.wait(eid, timeout=WAIT).status == "failed"
    with pytest.raises(ValueError, match="only failed, cancelled or parked"):
        engine.retry(engine.start_workflow("never-runs", None))
    fixed.set()
    engine.retry(eid)
    ex = engine.wait(eid, timeout=WAIT)
    assert (ex.status, ex.output, ex.attempt, ex.error) == ("completed", "fine", 2, None)
    assert calls.counts == {"first": 1, "fragile": 2}
