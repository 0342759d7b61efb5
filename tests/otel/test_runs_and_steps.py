"""``hydra.otel.Tracing`` in a ``TestEnvironment`` (fake clock, the test's thread): one
span per run, each its own trace linked to the start; a span per step body that ran,
never for a checkpoint replayed; sleeps, waits and retries as events; errors."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from opentelemetry import trace

import hydra
import hydra.otel
from hydra.testing import TestEnvironment
from tests.otel.spans import (
    Spans,
    attr,
    ctx,
    event_names,
    exceptions,
    failed,
    is_child,
    linked_to,
)


@hydra.workflow("otel-nap")
def nap(ctx_: hydra.WorkflowContext, n: int) -> int:
    one = hydra.step(ctx_, "one", lambda: n + 1)
    hydra.sleep(ctx_, timedelta(days=2), name="nap")
    return hydra.step(ctx_, "two", lambda: one * 10)


def env_with(spans: Spans, **options: object) -> TestEnvironment:
    env = TestEnvironment(**options)  # type: ignore[arg-type]
    env.engine.add_observer(spans.tracing)
    return env


def test_a_sleeping_workflow_makes_two_runs_each_its_own_trace_linked_to_the_start(
    spans: Spans,
) -> None:
    env = env_with(spans)
    env.register(nap)
    with spans.tracer.start_as_current_span("caller") as caller:
        eid = env.start(nap, 1)
    assert env.run_until_complete(eid).output == 20

    first, second = spans.runs(eid)
    start = caller.get_span_context()
    for run in (first, second):
        assert run.name == "run otel-nap"
        assert run.parent is None, "a run is the root of its own trace"
        assert [(c.trace_id, c.span_id) for c in linked_to(run)] == [
            (start.trace_id, start.span_id)
        ]
        assert attr(run, "hydra.execution.id") == eid
        assert attr(run, "hydra.workflow.name") == "otel-nap"
        assert attr(run, "hydra.namespace") == "test"
        assert attr(run, "hydra.attempt") == 1
        assert attr(run, "hydra.worker.id") == "worker-1"
        assert not failed(run)
    assert len({ctx(first).trace_id, ctx(second).trace_id, start.trace_id}) == 3
    assert attr(first, "hydra.run.outcome") == "suspended"
    assert attr(second, "hydra.run.outcome") == "completed"
    assert attr(second, "hydra.execution.status") == "completed"
    (sleep,) = first.events
    assert sleep.name == "hydra.sleep"
    assert dict(sleep.attributes or {}) == {
        "hydra.checkpoint.name": "nap",
        "hydra.wake_at": "2030-01-03T00:00:00+00:00",  # the fake clock's start + 2 days
    }

    # Step "one" ran in the first run only: the second replayed its checkpoint.
    (one,) = spans.steps(eid, "one")
    (two,) = spans.steps(eid, "two")
    assert is_child(one, first) and is_child(two, second)
    assert attr(second, "hydra.run.replayed_steps") == 1
    assert attr(first, "hydra.run.replayed_steps") is None
    assert (attr(one, "hydra.step.attempt"), attr(one, "hydra.step.status")) == (1, "completed")
    assert attr(two, "hydra.attempt") == 1 and attr(two, "hydra.worker.id") == "worker-1"
    assert len(spans.all()) == 5  # caller, two runs, two steps


def test_without_a_start_context_the_runs_link_to_nothing(spans: Spans) -> None:
    env = env_with(spans)
    env.register(nap)
    eid = env.start(nap, 1)
    env.run_until_complete(eid)
    assert env.engine.store.get_execution("test", eid).trace_context is None  # type: ignore[union-attr]
    assert [linked_to(run) for run in spans.runs(eid)] == [[], []]


def test_the_caller_s_context_is_stored_with_the_execution(spans: Spans) -> None:
    env = env_with(spans)
    with spans.tracer.start_as_current_span("caller") as caller:
        eid = env.start("anything", None)
    row = env.engine.store.get_execution("test", eid)
    assert row is not None and row.trace_context is not None
    start = caller.get_span_context()
    traceparent = f"00-{start.trace_id:032x}-{start.span_id:016x}-{start.trace_flags:02x}"
    assert row.trace_context == f'{{"traceparent":"{traceparent}"}}'


@hydra.workflow("otel-flaky")
def flaky(ctx_: hydra.WorkflowContext, fails: int) -> str:
    calls = {"n": 0}

    def shaky() -> str:
        calls["n"] += 1
        if FLAKY_FAILURES[0] > 0:
            FLAKY_FAILURES[0] -= 1
            raise ConnectionError("the API is down")
        return "ok"

    retry = hydra.RetryPolicy(max_attempts=fails, initial_backoff=timedelta(minutes=1))
    return hydra.step(ctx_, "shaky", shaky, retry=retry)


FLAKY_FAILURES = [0]


def test_a_failed_step_attempt_is_an_error_span_and_its_retry_an_event(spans: Spans) -> None:
    env = env_with(spans)
    env.register(flaky)
    FLAKY_FAILURES[0] = 1
    eid = env.start(flaky, 3)
    assert env.run_until_complete(eid).output == "ok"

    first, second = spans.runs(eid)
    bad, good = spans.steps(eid, "shaky")
    assert failed(bad) and not failed(good)
    assert bad.status.description == "ConnectionError: the API is down"
    assert exceptions(bad) == ["ConnectionError"]
    assert (attr(bad, "hydra.step.attempt"), attr(good, "hydra.step.attempt")) == (1, 2)
    assert attr(bad, "hydra.step.status") == "failed"
    assert is_child(bad, first) and is_child(good, second)
    # The backoff suspends the run: no error of the run itself.
    assert attr(first, "hydra.run.outcome") == "suspended" and not failed(first)
    assert event_names(first) == ["hydra.step_retry_scheduled"]
    assert dict(first.events[0].attributes or {}) == {"hydra.step.name": "shaky"}


def test_a_step_that_used_its_attempts_fails_its_span_and_the_run_s(spans: Spans) -> None:
    env = env_with(spans)
    env.register(flaky)
    FLAKY_FAILURES[0] = 5
    eid = env.start(flaky, 1, max_attempts=1)
    assert env.run_until_complete(eid).status == "failed"

    (run,) = spans.runs(eid)
    (step,) = spans.steps(eid, "shaky")
    assert failed(step) and exceptions(step) == ["ConnectionError"]
    assert failed(run)
    assert attr(run, "hydra.run.outcome") == "failed"
    assert attr(run, "hydra.execution.status") == "failed"
    assert exceptions(run) == ["StepFailedError"]
    assert run.status.description is not None
    assert run.status.description.startswith("StepFailedError: step 'shaky' failed")


@hydra.workflow("otel-raises")
def raises(ctx_: hydra.WorkflowContext, _: None) -> None:
    hydra.step(ctx_, "fine", lambda: 1)
    raise ValueError("no good")


def test_a_workflow_attempt_that_raises_fails_its_run_span_then_the_retry_runs(
    spans: Spans,
) -> None:
    env = env_with(spans)
    env.register(raises)
    eid = env.start(raises, None, max_attempts=2)
    assert env.run_until_complete(eid).status == "failed"

    first, second = spans.runs(eid)
    assert [attr(r, "hydra.run.outcome") for r in (first, second)] == [
        "retry_scheduled",
        "failed",
    ]
    assert [attr(r, "hydra.attempt") for r in (first, second)] == [1, 2]
    assert all(failed(r) and exceptions(r) == ["ValueError"] for r in (first, second))
    assert first.status.description == "ValueError: no good"
    # The step ran once; the second attempt replayed it.
    assert len(spans.steps(eid, "fine")) == 1


@hydra.workflow("otel-receiver")
def receiver(ctx_: hydra.WorkflowContext, _: None) -> str:
    got = hydra.receive(ctx_, "approval", timeout=timedelta(hours=1), name="approval")
    return str(got)


def test_waits_and_messages_are_events_of_the_run_spans(spans: Spans) -> None:
    env = env_with(spans)
    env.register(receiver)
    eid = env.start(receiver, None)
    env.run_until_idle()
    env.send(eid, "approval", "yes")
    assert env.run_until_complete(eid).output == "yes"

    waited, took = spans.runs(eid)
    (wait,) = waited.events
    assert wait.name == "hydra.wait"
    assert dict(wait.attributes or {}) == {
        "hydra.checkpoint.name": "approval",
        "hydra.topic": "approval",
        "hydra.deadline": "2030-01-01T01:00:00+00:00",
    }
    (received,) = took.events
    assert received.name == "hydra.received"
    assert (received.attributes or {})["hydra.topic"] == "approval"


def test_a_receive_that_times_out_is_an_event_then_the_run_s_error(spans: Spans) -> None:
    env = env_with(spans)
    env.register(receiver)
    eid = env.start(receiver, None, max_attempts=1)
    assert env.run_until_complete(eid).status == "failed"
    _, timed_out = spans.runs(eid)
    assert event_names(timed_out)[0] == "hydra.wait_timed_out"
    assert failed(timed_out) and exceptions(timed_out) == ["WaitTimeoutError"]


@hydra.workflow("otel-cancelled")
def cancelled(ctx_: hydra.WorkflowContext, _: None) -> None:
    hydra.step(ctx_, "cancel-me", lambda: CANCEL[0]())
    hydra.step(ctx_, "never", lambda: None)


CANCEL: list[Callable[[], object]] = [lambda: None]


def test_a_lost_lease_is_an_error_of_the_run_and_of_the_step_it_stopped(spans: Spans) -> None:
    env = env_with(spans)
    env.register(cancelled)
    eid = env.start(cancelled, None)
    CANCEL[0] = lambda: env.engine.cancel(eid)
    env.run_until_idle()
    assert env.execution(eid).status == "cancelled"

    (run,) = spans.runs(eid)
    (step,) = spans.steps(eid)  # its checkpoint was refused: the run stopped in it
    assert attr(run, "hydra.run.outcome") == "lost"
    assert failed(run) and exceptions(run) == ["LeaseLostError"]
    assert failed(step) and is_child(step, run)
    assert step.status.description == "the run ended (lost) inside the step"


@hydra.workflow("otel-nested")
def nested(ctx_: hydra.WorkflowContext, _: None) -> list[str]:
    tracer = trace.get_tracer("user-code")

    def body(name: str) -> str:
        with tracer.start_as_current_span(f"inside {name}"):
            return name

    plain = hydra.step(ctx_, "plain", lambda: body("plain"))
    timed = hydra.step(ctx_, "timed", lambda: body("timed"), timeout=timedelta(seconds=30))
    both = hydra.gather(ctx_, {"left": lambda: body("left"), "right": lambda: body("right")})
    return [plain, timed, both["left"], both["right"]]


def test_spans_opened_by_a_step_body_are_children_of_its_step_span(
    spans: Spans, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The body's code uses the global tracer provider, as instrumented libraries do.
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", spans.provider)
    env = env_with(spans)
    env.register(nested)
    eid = env.start(nested, None)
    assert env.run_until_complete(eid).output == ["plain", "timed", "left", "right"]
    (run,) = spans.runs(eid)
    for name in ("plain", "timed", "left", "right"):
        (step,) = spans.steps(eid, name)
        assert is_child(step, run), name
        assert is_child(spans.named(f"inside {name}"), step), name
    # Outside the bodies the current context is as it was.
    assert not trace.get_current_span().get_span_context().is_valid


@hydra.workflow("otel-fan")
def fan(ctx_: hydra.WorkflowContext, width: int) -> list[int]:
    arrived = threading.Barrier(width, timeout=10)

    def branch(i: int) -> int:
        arrived.wait()  # every branch in flight at once
        return i

    results = hydra.gather(ctx_, {f"b{i}": functools.partial(branch, i) for i in range(width)})
    return [results[f"b{i}"] for i in range(width)]


def test_parallel_steps_are_each_a_child_of_their_run_span(spans: Spans) -> None:
    env = env_with(spans)
    env.register(fan)
    eid = env.start(fan, 4)
    assert env.run_until_complete(eid).output == [0, 1, 2, 3]
    (run,) = spans.runs(eid)
    branches = spans.steps(eid)
    assert sorted(str(attr(s, "hydra.step.name")) for s in branches) == ["b0", "b1", "b2", "b3"]
    assert all(is_child(s, run) and not failed(s) for s in branches)
    assert len({ctx(s).span_id for s in branches}) == 4
    # Each overlapped the others (started before any ended).
    assert max(s.start_time or 0 for s in branches) < min(s.end_time or 0 for s in branches)


@hydra.workflow("otel-async-fan")
async def async_fan(ctx_: hydra.AsyncWorkflowContext, width: int) -> list[int]:
    import asyncio

    arrived = asyncio.Barrier(width)  # every branch in flight at once
    tracer = trace.get_tracer("user-code")

    async def branch(i: int) -> int:
        await arrived.wait()
        with tracer.start_as_current_span(f"inside b{i}"):
            await asyncio.sleep(0)
        return i

    results: dict[str, int] = await hydra.gather(
        ctx_, {f"b{i}": functools.partial(branch, i) for i in range(width)}
    )
    return [results[f"b{i}"] for i in range(width)]


def test_async_parallel_steps_keep_their_own_current_span(
    spans: Spans, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", spans.provider)
    env = env_with(spans)
    env.register(async_fan)
    eid = env.start(async_fan, 3)
    assert env.run_until_complete(eid).output == [0, 1, 2]
    (run,) = spans.runs(eid)
    for i in range(3):
        (step,) = spans.steps(eid, f"b{i}")
        assert is_child(step, run)
        assert is_child(spans.named(f"inside b{i}"), step)


@hydra.workflow("otel-child")
def child(ctx_: hydra.WorkflowContext, n: int) -> int:
    return hydra.step(ctx_, "double", lambda: n * 2)


@hydra.workflow("otel-parent")
def parent(ctx_: hydra.WorkflowContext, n: int) -> int:
    handle = hydra.start_child(ctx_, "kid", child, n)
    return hydra.wait_child(ctx_, handle, result_type=int) + 1  # type: ignore[no-any-return]


def test_a_child_s_runs_link_to_the_parent_run_that_started_it(spans: Spans) -> None:
    env = env_with(spans)
    env.register(parent)
    env.register(child)
    with spans.tracer.start_as_current_span("caller") as caller:
        eid = env.start(parent, 4)
    assert env.run_until_complete(eid).output == 9
    started, resumed = spans.runs(eid)
    (child_run,) = [r for r in spans.runs() if attr(r, "hydra.workflow.name") == "otel-child"]
    assert [(c.trace_id, c.span_id) for c in linked_to(child_run)] == [
        (ctx(started).trace_id, ctx(started).span_id)
    ]
    assert [c.span_id for c in linked_to(started)] == [caller.get_span_context().span_id]
    wait = started.events[0]
    assert wait.name == "hydra.wait"
    assert (wait.attributes or {})["hydra.child.id"] == attr(child_run, "hydra.execution.id")
    assert event_names(resumed) == ["hydra.received"]


def test_runs_leave_nothing_behind(spans: Spans) -> None:
    """Per-run state is dropped when each run ends: thousands of runs, none left."""
    env = env_with(spans)
    env.register(nap)
    env.register(flaky)
    FLAKY_FAILURES[0] = 300
    ids = [env.start(nap, i) for i in range(600)] + [env.start(flaky, 2) for _ in range(200)]
    env.run_until_all_complete()
    assert len(spans.runs()) == 2 * 600 + 2 * 200
    assert spans.tracing._runs == {}
    assert {env.execution(i).status for i in ids} == {"completed", "failed"}


def test_without_a_provider_it_uses_the_global_one_set_later(
    spans: Spans, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)  # none configured yet
    tracing = hydra.otel.Tracing()
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", spans.provider)  # the app sets its SDK
    env = TestEnvironment()
    env.engine.add_observer(tracing)
    env.register(nap)
    eid = env.start(nap, 1)
    env.run_until_complete(eid)
    assert len(spans.runs(eid)) == 2 and len(spans.steps(eid)) == 2
