"""Messages and events beyond the basics, on every store: async workflows, misuse,
takeovers, events read from outside while real workers run, metrics."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import hydra
from hydra.events import Outcome
from hydra.status import StepStatus
from hydra.store.base import Store
from hydra.testing import FakeClock, TestEnvironment

MakeEnv = Callable[..., TestEnvironment]
WAIT = 30  # seconds: a bound against hangs, not an expectation


@pytest.fixture
def make_env(store_factory: Callable[[], Store]) -> MakeEnv:
    def make(**options: Any) -> TestEnvironment:
        options.setdefault("namespace", f"msg-{uuid.uuid4().hex[:12]}")
        options.setdefault("clock", FakeClock(datetime(2030, 1, 1, tzinfo=UTC)))
        return TestEnvironment(store=store_factory(), **options)

    return make


@hydra.workflow("async-mailbox")
async def async_mailbox(ctx: hydra.AsyncWorkflowContext, peer: str) -> Any:
    await hydra.set_event(ctx, "stage", "started")
    await hydra.send(ctx, peer, "ping", {"from": ctx.execution_id})
    try:
        got = await hydra.receive(ctx, "pong", timeout=timedelta(minutes=5))
    except hydra.WaitTimeoutError:
        got = None
    await hydra.set_event(ctx, "stage", "done")
    return got


@hydra.workflow("echo")
def echo(ctx: hydra.WorkflowContext, _: None) -> str:
    ping = hydra.receive(ctx, "ping")
    hydra.send(ctx, ping["from"], "pong", "pong!")
    return "echoed"


def test_async_workflows_await_receive_send_and_set_event(make_env: MakeEnv) -> None:
    env = make_env()
    env.register(async_mailbox)
    env.register(echo)
    peer = env.start(echo, None)
    eid = env.start(async_mailbox, peer)
    env.run_until_all_complete()
    assert env.execution(eid).output == "pong!"
    assert env.execution(peer).output == "echoed"
    assert env.engine.get_events(eid) == {"stage": "done"}
    sent = env.engine.list_messages(eid, sent=True)
    assert [(m.execution_id, m.topic, m.received_by) for m in sent] == [(peer, "ping", "receive-1")]


def test_receive_inside_a_step_function_is_a_clear_error(make_env: MakeEnv) -> None:
    @hydra.workflow("misplaced")
    def misplaced(ctx: hydra.WorkflowContext, _: None) -> Any:
        return hydra.step(
            ctx, "fetch", lambda: hydra.receive(ctx, "x"), retry=hydra.RetryPolicy(max_attempts=1)
        )

    env = make_env()
    env.register(misplaced)
    eid = env.start(misplaced, None)
    execution = env.run_until_complete(eid)
    assert execution.status == "failed"
    step = execution.step("fetch")
    assert step is not None and step.error is not None
    assert "hydra.receive ('receive-1') was called inside the function of step 'fetch'" in (
        step.error
    )
    assert "call them from the workflow's code, between steps" in step.error


def test_a_name_used_by_a_step_and_a_receive_is_a_duplicate(make_env: MakeEnv) -> None:
    @hydra.workflow("clash")
    def clash(ctx: hydra.WorkflowContext, _: None) -> Any:
        hydra.step(ctx, "decision", lambda: 1)
        return hydra.receive(ctx, "x", name="decision")

    env = make_env()
    env.register(clash)
    execution = env.run_until_complete(env.start(clash, None))
    assert (execution.status, execution.error_type) == ("failed", "DuplicateStepError")


def test_a_send_to_a_finished_execution_reaches_the_workflow(make_env: MakeEnv) -> None:
    @hydra.workflow("notify")
    def notify(ctx: hydra.WorkflowContext, target: str) -> str:
        try:
            hydra.send(ctx, target, "x", 1)
        except hydra.ExecutionFinishedError as exc:
            return f"too late: {type(exc).__name__}"
        return "sent"

    @hydra.workflow("quick")
    def quick(ctx: hydra.WorkflowContext, _: None) -> str:
        return "done"

    env = make_env()
    env.register(notify)
    env.register(quick)
    done = env.start(quick, None)
    env.run_until_complete(done)
    execution = env.run_until_complete(env.start(notify, done))
    assert execution.output == "too late: ExecutionFinishedError"
    assert [s.name for s in execution.steps] == []  # nothing checkpointed for the refused send


@hydra.workflow("wait-once")
def wait_once(ctx: hydra.WorkflowContext, _: None) -> Any:
    hydra.step(ctx, "prepare", lambda: "ready")
    return hydra.receive(ctx, "go")


def test_a_takeover_fences_the_paused_worker_s_receive(make_env: MakeEnv) -> None:
    """A worker frozen before its receive loses its lease; the new owner takes the
    message; the zombie's receive, when it wakes, consumes nothing."""
    env = make_env(workers=2, claim_timeout=timedelta(seconds=30))
    env.register(wait_once)
    eid = env.start(wait_once, None)
    env.send(eid, "go", "the only message")
    env.pause("prepare", "after")
    done = env.run_until_complete(eid)
    assert (done.output, done.attempt) == ("the only message", 2)
    assert env.resume() == [Outcome.LOST]
    messages = env.engine.list_messages(eid)
    assert [(m.payload, m.received_by) for m in messages] == [("the only message", "receive-1")]
    assert env.execution(eid) == done


def test_metrics_count_messages_waits_and_timeouts(store_factory: Callable[[], Store]) -> None:
    metrics = hydra.Metrics()
    env = TestEnvironment(
        store=store_factory(),
        namespace=f"msg-{uuid.uuid4().hex[:12]}",
        clock=FakeClock(datetime(2030, 1, 1, tzinfo=UTC)),
        metrics=metrics,
    )

    @hydra.workflow("metered")
    def metered(ctx: hydra.WorkflowContext, _: None) -> Any:
        first = hydra.receive(ctx, "a")
        with contextlib.suppress(hydra.WaitTimeoutError):
            hydra.receive(ctx, "b", timeout=timedelta(minutes=1))
        return first

    env.register(metered)
    eid = env.start(metered, None)
    env.run_until_idle()
    env.advance(timedelta(seconds=90))
    env.send(eid, "a", 1)
    env.run_until_complete(eid)
    labels = {"namespace": env.engine.namespace, "workflow": "metered"}
    sample = metrics.registry.get_sample_value
    assert sample("hydra_messages_sent_total", {"namespace": env.engine.namespace}) == 1
    assert sample("hydra_messages_received_total", labels) == 1
    assert sample("hydra_message_wait_seconds_sum", labels) == 90
    assert sample("hydra_receive_timeouts_total", labels) == 1


# -- with real worker threads -------------------------------------------------------------
@pytest.fixture
def engine(store_factory: Callable[[], Store]) -> hydra.Engine:
    return hydra.Engine(store_factory(), namespace=f"t-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def worker(engine: hydra.Engine) -> Iterator[hydra.Worker]:
    worker = hydra.Worker(engine, poll_interval=0.05, heartbeat_interval=0.5)
    for wf in (staged, wait_once):
        worker.register(wf)
    worker.start()
    yield worker
    worker.shutdown(timeout=WAIT)


@hydra.workflow("staged")
def staged(ctx: hydra.WorkflowContext, _: None) -> str:
    hydra.set_event(ctx, "stage", "waiting")
    decision = hydra.receive(ctx, "decision")
    hydra.set_event(ctx, "stage", f"decided: {decision}")
    return str(decision)


def test_get_event_waits_for_a_worker_to_set_it(engine: hydra.Engine, worker: hydra.Worker) -> None:
    eid = engine.start_workflow(staged, None)
    assert engine.get_event(eid, "stage", timeout=WAIT) == "waiting"
    with pytest.raises(hydra.WaitTimeoutError, match=r"not set within 0\.2 s"):
        engine.get_event(eid, "missing", timeout=0.2)
    result: list[Any] = []
    waiter = threading.Thread(
        target=lambda: result.append(_event_when(engine, eid, "stage", "decided: yes"))
    )
    waiter.start()
    engine.send(eid, "decision", "yes")
    assert engine.wait(eid, timeout=WAIT).output == "yes"
    waiter.join(WAIT)
    assert result == ["decided: yes"]
    assert engine.get_events(eid) == {"stage": "decided: yes"}
    with pytest.raises(hydra.WaitTimeoutError, match="ended without setting it"):
        engine.get_event(eid, "missing", timeout=WAIT)  # at once: it can never be set now


def _event_when(engine: hydra.Engine, eid: str, key: str, wanted: Any) -> Any:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        value = engine.get_event(eid, key, timeout=WAIT)
        if value == wanted:
            return value
        time.sleep(0.01)
    return None


def test_a_message_wakes_a_waiting_execution_at_once(
    engine: hydra.Engine, worker: hydra.Worker
) -> None:
    eid = engine.start_workflow(wait_once, None)
    deadline = time.monotonic() + WAIT
    while engine.get_execution(eid).status != "sleeping" and time.monotonic() < deadline:
        time.sleep(0.01)
    waiting = engine.get_execution(eid)
    assert (waiting.status, waiting.wait_topic, waiting.worker_id) == ("sleeping", "go", None)
    step = waiting.step("receive-1")
    assert step is not None and step.status == StepStatus.WAITING
    engine.send(eid, "go", {"n": 1})
    assert engine.wait(eid, timeout=WAIT).output == {"n": 1}
