"""``Tracing`` under a real ``hydra.Worker``: run threads, ``gather``'s branch threads,
the start context read back by another engine, and runs the worker gives up on (still
in a step at shutdown, past their timeout): their spans end once, from the worker."""

from __future__ import annotations

import functools
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import hydra
from hydra.events import RunEnd
from hydra.store.base import Claim, Store
from hydra.testing import MemoryStore
from tests.conftest import BackendStoreFactory
from tests.otel.spans import Spans, attr, ctx, exceptions, failed, is_child, linked_to

WAIT = 30  # seconds: a bound against hangs, not an expectation


@contextmanager
def worker_on(engine: hydra.Engine, *workflows: hydra.Workflow[object]) -> Iterator[hydra.Worker]:
    worker = hydra.Worker(engine, poll_interval=0.02, heartbeat_interval=0.5, claim_timeout=5)
    for workflow in workflows:
        worker.register(workflow)
    worker.start()
    try:
        yield worker
    finally:
        worker.shutdown(timeout=WAIT)


@hydra.workflow("otel-w-fan")
def fan(ctx_: hydra.WorkflowContext, width: int) -> int:
    arrived = threading.Barrier(width, timeout=WAIT)

    def branch(i: int) -> int:
        arrived.wait()  # every branch in flight at once, each on its own thread
        return i

    first = hydra.step(ctx_, "first", lambda: 1)
    results = hydra.gather(ctx_, {f"b{i}": functools.partial(branch, i) for i in range(width)})
    return first + sum(results.values())


def test_a_worker_s_runs_and_parallel_steps_on_every_store(
    spans: Spans, store_factory: BackendStoreFactory
) -> None:
    """Started through one engine, run by a worker of another (on the same database):
    the run links to the caller's span, and the branches' spans are its children."""
    namespace = f"otel-{uuid.uuid4().hex[:12]}"
    store = store_factory()
    starter = hydra.Engine(store, namespace=namespace, observers=[Spans().tracing])
    with spans.tracer.start_as_current_span("caller") as caller:
        eids = [starter.start_workflow("otel-w-fan", 4) for _ in range(3)]
    other: Store = store_factory() if store_factory.url is not None else store
    runner = hydra.Engine(other, namespace=namespace, observers=[spans.tracing])
    with worker_on(runner, fan) as worker:
        assert [runner.wait(e, timeout=WAIT).output for e in eids] == [7, 7, 7]
    start = caller.get_span_context()
    for eid in eids:
        (run,) = spans.runs(eid)
        assert [(c.trace_id, c.span_id) for c in linked_to(run)] == [
            (start.trace_id, start.span_id)
        ]
        assert attr(run, "hydra.worker.id") == worker.worker_id
        steps = spans.steps(eid)
        assert sorted(str(attr(s, "hydra.step.name")) for s in steps) == [
            "b0",
            "b1",
            "b2",
            "b3",
            "first",
        ]
        assert all(is_child(s, run) and not failed(s) for s in steps)
        assert len({ctx(s).span_id for s in steps}) == 5
    assert spans.tracing._runs == {}


class Ends(hydra.Observer):
    """Records each ``run_ended``, with the thread it came on, and each lost lease."""

    def __init__(self) -> None:
        self.ends: list[tuple[str, RunEnd, str]] = []
        self.lost = threading.Event()

    def run_ended(self, claim: Claim, end: RunEnd) -> None:
        self.ends.append((claim.execution.id, end, threading.current_thread().name))

    def lease_lost(self, claim: Claim) -> None:
        self.lost.set()


ENTERED = threading.Event()
LET_GO = threading.Event()


@hydra.workflow("otel-w-stuck")
def stuck(ctx_: hydra.WorkflowContext, _: None) -> str:
    def hold() -> str:
        ENTERED.set()
        LET_GO.wait(WAIT)
        return "done"

    return hydra.step(ctx_, "hold", hold)


def _stuck_run(spans: Spans, ends: Ends, **options: object) -> tuple[hydra.Engine, str]:
    ENTERED.clear()
    LET_GO.clear()
    store = MemoryStore()
    engine = hydra.Engine(store, namespace="otel", observers=[spans.tracing, ends])
    return engine, engine.start_workflow(stuck, None, **options)  # type: ignore[arg-type]


def test_a_run_still_in_a_step_at_shutdown_ends_released_once(spans: Spans) -> None:
    ends = Ends()
    engine, eid = _stuck_run(spans, ends)
    worker = hydra.Worker(engine, poll_interval=0.02, heartbeat_interval=0.5, claim_timeout=5)
    worker.register(stuck)
    worker.start()
    assert ENTERED.wait(WAIT)
    worker.shutdown(timeout=0.05)  # the run is still in "hold": given back

    ((_, end, thread),) = ends.ends
    assert end.outcome == hydra.events.Outcome.RELEASED
    assert thread == threading.current_thread().name  # the shutdown's caller
    (run,) = spans.runs(eid)
    assert attr(run, "hydra.run.outcome") == "released" and not failed(run)
    (step,) = spans.steps(eid)  # ended with the run: the body is still going
    assert failed(step) and is_child(step, run)
    assert step.status.description == "the run ended (released) inside the step"
    assert spans.tracing._runs == {}

    LET_GO.set()  # the body returns; its checkpoint is refused: the run ends lost
    assert ends.lost.wait(WAIT)
    assert len(ends.ends) == 1, "run_ended came twice"
    assert len(spans.all()) == 2, "the late step_finished made a span"
    assert engine.get_execution(eid).status == "pending"


def test_a_cancelled_run_stuck_in_a_step_ends_lost_from_the_watchdog(spans: Spans) -> None:
    ends = Ends()
    engine, eid = _stuck_run(spans, ends)
    worker = hydra.Worker(engine, poll_interval=0.02, heartbeat_interval=0.2, claim_timeout=1)
    worker.register(stuck)
    worker.start()
    try:
        assert ENTERED.wait(WAIT)
        assert engine.cancel(eid)
        # The run's code does not reach a step: after a lease's length the watchdog
        # gives up on it (and reports its end) while the body still holds its thread.
        for _ in range(WAIT * 100):
            if ends.ends:
                break
            threading.Event().wait(0.01)
        LET_GO.set()
        assert ends.lost.wait(WAIT)
    finally:
        LET_GO.set()
        worker.shutdown(timeout=WAIT)
    ((_, end, thread),) = ends.ends
    assert end.outcome == hydra.events.Outcome.LOST
    assert thread == f"hydra-watchdog-{worker.worker_id}"
    (run,) = spans.runs(eid)
    assert failed(run) and attr(run, "hydra.run.outcome") == "lost"
    assert exceptions(run) == ["LeaseLostError"]
    assert run.status.description == (
        "LeaseLostError: its lease was lost and its code did not reach a step"
    )
    (step,) = spans.steps(eid)
    assert failed(step) and is_child(step, run)
    assert spans.tracing._runs == {}
