"""OpenTelemetry traces of hydra's runs: ``hydra.otel.Tracing``, an observer.

Installed by the extra ``hydra-workflows[otel]`` (the OpenTelemetry API; your SDK and
exporter are configured as for the rest of your application). ``import hydra`` never
imports this module. See docs/tracing.md.

What it emits:

- one span per run of an execution (``run <workflow>``), from the claim to the moment
  the run ends: finished, suspended (a sleep, a wait, a step's or the workflow's retry
  backoff), lost, interrupted, parked, crashed or given back. Each run is the root of
  a trace of its own, LINKED to the context the execution was started in (the caller of
  ``start_workflow``, or the parent's run for a child): an execution that sleeps for
  days is a chain of short traces, not one trace that never ends;
- one child span per step body that ran (``step <name>``), current while the body runs
  (spans your code opens in it are its children), never one for a checkpoint replayed;
- sleeps, waits, messages received and step retries as events of the run's span;
  failures, lost leases and crashes as span errors (status ERROR and the exception).

The start context: ``Tracing.start_context`` (an ``Observer`` hook) injects the current
context with the globally configured propagator (W3C trace context and baggage by
default) when a workflow is started; hydra stores it with the execution
(``hydra.tracecontext``) and every worker that runs it reads it back from its claim.

Threads: observers are called on the run's thread, on the threads of a ``hydra.gather``
(several step bodies at once) and, for a run the worker gives up on, on its watchdog or
shutdown thread. The spans of one run are kept under its lease (execution id and token)
with a lock of their own; the step spans of parallel branches each have their own
entry; everything of a run is dropped at ``run_ended``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from contextlib import AbstractContextManager
from contextvars import Token
from types import TracebackType
from typing import TYPE_CHECKING

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.context import Context
    from opentelemetry.trace import Link, Span, StatusCode
    from opentelemetry.trace import Status as SpanStatus
except ImportError as exc:
    raise ImportError(
        "hydra.otel needs OpenTelemetry, which is not installed: install the extra "
        "with `pip install 'hydra-workflows[otel]'` (and an OpenTelemetry SDK and "
        "exporter to send the spans somewhere)"
    ) from exc

from hydra import __version__
from hydra.clock import from_ms
from hydra.events import Observer, Outcome, RunEnd, RunInfo
from hydra.status import Status
from hydra.store.base import Claim, child_topic
from hydra.tracecontext import decode_trace_context

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

#: the instrumentation scope of hydra's spans
SCOPE = "hydra.otel"

# Attributes of every span (run and step).
EXECUTION_ID = "hydra.execution.id"
WORKFLOW_NAME = "hydra.workflow.name"
NAMESPACE = "hydra.namespace"
#: the workflow attempt (1-based) the run belongs to
ATTEMPT = "hydra.attempt"
WORKER_ID = "hydra.worker.id"
# Of a run's span.
QUEUE = "hydra.queue.name"
TAKEOVER = "hydra.run.takeover"
#: how the run ended: an ``hydra.events.Outcome`` value, or "crashed"
OUTCOME = "hydra.run.outcome"
#: how many completed steps the run replayed from their checkpoints (bodies not run)
REPLAYED = "hydra.run.replayed_steps"
#: the execution's final status, on the span of the run that ended it
STATUS = "hydra.execution.status"
# Of a step's span.
STEP_NAME = "hydra.step.name"
STEP_ATTEMPT = "hydra.step.attempt"
STEP_STATUS = "hydra.step.status"
# Of the events on a run's span.
CHECKPOINT = "hydra.checkpoint.name"
WAKE_AT = "hydra.wake_at"
TOPIC = "hydra.topic"
DEADLINE = "hydra.deadline"
CHILD_ID = "hydra.child.id"
WAITED_MS = "hydra.waited_ms"
#: on the link from a run's span to the context its execution was started in
LINK_KIND = "hydra.link"

_CHILD_TOPIC = child_topic("")
#: outcomes that are no error: the run's span keeps status UNSET
_CLEAN = frozenset({Outcome.COMPLETED, Outcome.SUSPENDED, Outcome.RELEASED})


class _Step:
    """A step body's span, open from its scope to ``step_finished``."""

    __slots__ = ("error", "span")

    def __init__(self, span: Span) -> None:
        self.span = span
        #: what the body raised (seen by the scope on its way out), recorded at its end
        self.error: BaseException | None = None


class _Run:
    """One run's span and its open step spans. ``lock`` orders what the run's threads
    (its own, gather branches) and a worker giving up on it do to them."""

    __slots__ = ("ended", "lock", "replayed", "span", "steps")

    def __init__(self, span: Span) -> None:
        self.span = span
        self.lock = threading.Lock()
        self.steps: dict[str, _Step] = {}  # step names are unique within a run
        self.replayed = 0
        self.ended = False


class _StepScope:
    """Makes a step's span the current one while its body runs, on the body's own
    thread or task (so spans opened by the body's code are its children)."""

    __slots__ = ("_step", "_token")

    def __init__(self, step: _Step) -> None:
        self._step = step
        self._token: Token[Context] | None = None

    def __enter__(self) -> None:
        self._token = otel_context.attach(trace.set_span_in_context(self._step.span))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            otel_context.detach(self._token)
            self._token = None
        if exc is not None:
            self._step.error = exc


class Tracing(Observer):
    """Emits OpenTelemetry spans for the runs of an engine's workers: one per run of an
    execution, one per step body that ran (see the module's docstring, docs/tracing.md).

    ``tracer_provider``: where the spans go; None: the global one
    (``opentelemetry.trace.set_tracer_provider``), looked up when the first span starts.
    Attach it with ``hydra.Engine(..., observers=[Tracing()])`` or
    ``engine.add_observer(Tracing())``, on the engines that start workflows (their
    callers' contexts are stored) and on those of the workers (they emit the spans).
    """

    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        self._tracer = trace.get_tracer(SCOPE, __version__, tracer_provider)
        self._lock = threading.Lock()
        self._runs: dict[tuple[str, int], _Run] = {}

    def __repr__(self) -> str:
        return f"<hydra.otel.Tracing runs in flight: {len(self._runs)}>"

    def _run(self, run: RunInfo | Claim) -> _Run | None:
        with self._lock:
            return self._runs.get((run.lease.execution_id, run.lease.token))

    # -- the start ------------------------------------------------------------------------
    def start_context(self, parent: RunInfo | None) -> dict[str, str] | None:
        """The caller's context (a child's: its parent's run span), as headers."""
        context = None
        if parent is not None:
            state = self._run(parent)
            if state is not None:
                context = trace.set_span_in_context(state.span)
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=context)
        return carrier or None

    # -- a run ----------------------------------------------------------------------------
    def claimed(self, claim: Claim) -> None:
        ex = claim.execution
        span = self._tracer.start_span(
            f"run {ex.workflow_name}",
            context=Context(),  # a new trace: linked to the start, not a child of it
            attributes={
                EXECUTION_ID: ex.id,
                WORKFLOW_NAME: ex.workflow_name,
                NAMESPACE: ex.namespace,
                ATTEMPT: ex.attempt,
                WORKER_ID: claim.lease.worker_id,
                QUEUE: ex.queue,
                TAKEOVER: claim.takeover,
            },
            links=_start_links(ex.trace_context),
        )
        with self._lock:
            self._runs[(claim.lease.execution_id, claim.lease.token)] = _Run(span)

    def run_finished(self, claim: Claim, status: Status) -> None:
        self._annotate(claim, STATUS, status.value)

    def run_ended(self, claim: Claim, end: RunEnd) -> None:
        with self._lock:
            state = self._runs.pop((claim.lease.execution_id, claim.lease.token), None)
        if state is None:
            return
        with state.lock:
            state.ended = True
            unfinished = list(state.steps.values())
            state.steps.clear()
            outcome = end.outcome.value if end.outcome is not None else "crashed"
            for step in unfinished:
                # Its checkpoint was never written: the run stopped under it.
                _failed(step.span, f"the run ended ({outcome}) inside the step", step.error)
                step.span.end()
            span = state.span
            span.set_attribute(OUTCOME, outcome)
            if state.replayed:
                span.set_attribute(REPLAYED, state.replayed)
            if end.outcome not in _CLEAN:
                _failed(span, _describe(end), end.exception, end)
            span.end()

    # -- its steps ------------------------------------------------------------------------
    def step_cached(self, run: RunInfo, name: str) -> None:
        state = self._run(run)
        if state is not None:
            with state.lock:
                state.replayed += 1

    def step_scope(
        self, run: RunInfo, name: str, attempt: int
    ) -> AbstractContextManager[None] | None:
        state = self._run(run)
        if state is None:
            return None  # claimed before this observer was added
        span = self._tracer.start_span(
            f"step {name}",
            context=trace.set_span_in_context(state.span, Context()),
            attributes={
                EXECUTION_ID: run.execution_id,
                WORKFLOW_NAME: run.workflow_name,
                NAMESPACE: run.namespace,
                ATTEMPT: run.attempt,
                WORKER_ID: run.lease.worker_id,
                STEP_NAME: name,
                STEP_ATTEMPT: attempt,
            },
        )
        step = _Step(span)
        with state.lock:
            if state.ended:  # the worker gave up on the run as this body began
                _failed(span, "the run had ended")
                span.end()
                return None
            state.steps[name] = step
        return _StepScope(step)

    def step_finished(self, run: RunInfo, name: str, status: str, duration_ms: int) -> None:
        state = self._run(run)
        if state is None:
            return
        with state.lock:
            step = state.steps.pop(name, None)
        if step is None:
            return
        step.span.set_attribute(STEP_STATUS, status)
        if status != "completed":
            error = step.error
            why = f"{type(error).__name__}: {error}" if error is not None else "the step failed"
            _failed(step.span, why, error)
        step.span.end()

    def step_retry_scheduled(self, run: RunInfo, name: str) -> None:
        self._event(run, "hydra.step_retry_scheduled", {STEP_NAME: name})

    # -- sleeps, waits, messages ------------------------------------------------------------
    def slept(self, run: RunInfo, name: str, wake_ms: int) -> None:
        self._event(run, "hydra.sleep", {CHECKPOINT: name, WAKE_AT: _iso(wake_ms)})

    def waiting(self, run: RunInfo, name: str, topic: str, deadline_ms: int | None) -> None:
        attributes = {CHECKPOINT: name, **_about(topic)}
        if deadline_ms is not None:
            attributes[DEADLINE] = _iso(deadline_ms)
        self._event(run, "hydra.wait", attributes)

    def received(self, run: RunInfo, name: str, topic: str, waited_ms: int) -> None:
        attributes: dict[str, str | int] = {CHECKPOINT: name, **_about(topic)}
        attributes[WAITED_MS] = max(waited_ms, 0)
        self._event(run, "hydra.received", attributes)

    def wait_timed_out(self, run: RunInfo, name: str, topic: str) -> None:
        self._event(run, "hydra.wait_timed_out", {CHECKPOINT: name, **_about(topic)})

    # -- helpers --------------------------------------------------------------------------
    def _event(self, run: RunInfo, name: str, attributes: Mapping[str, str | int]) -> None:
        state = self._run(run)
        if state is not None:
            with state.lock:
                if not state.ended:
                    state.span.add_event(name, attributes)

    def _annotate(self, claim: Claim, key: str, value: str) -> None:
        state = self._run(claim)
        if state is not None:
            with state.lock:
                if not state.ended:
                    state.span.set_attribute(key, value)


def _start_links(stored: str | None) -> list[Link]:
    """The link from a run's span to its execution's start context, if one was stored
    (read with the globally configured propagator, as it was written)."""
    carrier = decode_trace_context(stored)
    if not carrier:
        return []
    start = trace.get_current_span(propagate.extract(carrier)).get_span_context()
    if not start.is_valid:
        return []
    return [Link(start, {LINK_KIND: "start"})]


def _failed(
    span: Span, description: str, exc: BaseException | None = None, end: RunEnd | None = None
) -> None:
    """Mark ``span`` failed: status ERROR, and the exception recorded (or, with none, the
    error ``end`` names as an ``exception`` event)."""
    if exc is not None:
        span.record_exception(exc)
    elif end is not None and end.error_type is not None:
        span.add_event(
            "exception",
            {"exception.type": end.error_type, "exception.message": end.error_message or ""},
        )
    span.set_status(SpanStatus(StatusCode.ERROR, description))


def _describe(end: RunEnd) -> str:
    if end.error_type is not None:
        return f"{end.error_type}: {end.error_message}" if end.error_message else end.error_type
    if end.outcome is None:
        return "the run crashed"
    return f"the run ended {end.outcome.value}"


def _about(topic: str) -> dict[str, str]:
    """A wait's topic as attributes: a child's id for a ``wait_child``."""
    if topic.startswith(_CHILD_TOPIC):
        return {CHILD_ID: topic[len(_CHILD_TOPIC) :]}
    return {TOPIC: topic}


def _iso(ms: int) -> str:
    when = from_ms(ms)
    assert when is not None
    return when.isoformat()


__all__ = ["Tracing"]
