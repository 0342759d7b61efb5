"""The execution loop: one run of one claimed execution, from replay to its next state.

``execute`` is a plain function of (runtime, workflow, claim): the ``Runtime`` is what a
run needs from its engine (``engine.runtime``). The threaded ``Worker`` calls it from its
pool threads and ``hydra.testing.TestEnvironment`` calls it in the test's own thread, so
tests exercise exactly the production code path.

A run replays the workflow from the top (``hydra.run.Run``): completed steps return their
checkpoints without calling their function, elapsed sleeps return at once. The run ends
in one of: completed, failed, retry scheduled (a later workflow attempt), suspended (a
durable sleep or a step's retry backoff: the execution sleeps in the database and the
thread is freed), lost (the lease was taken over or the execution cancelled: nothing more
is written), or interrupted (the database failed under the run: nothing more is written
and the execution is given back without using an attempt). A lost or interrupted run is
unwound by ``RunStopped``, which workflow code's ``except Exception`` cannot swallow.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hydra.errors import (
    ChildFailedError,
    DuplicateStepError,
    LeaseLostError,
    NonDeterminismError,
    NonRetryableError,
    PayloadError,
    StepFailedError,
    WaitTimeoutError,
    WorkflowTimeoutError,
)
from hydra.events import Observer, Outcome, RunEnd, RunHooks
from hydra.logs import HydraLogger
from hydra.retry import workflow_backoff_ms
from hydra.run import (
    LEASE_GUARD_FRACTION,
    Run,
    RunStopped,
    Suspended,
    describe,
    monotonic_ms,
)
from hydra.runtime import Runtime
from hydra.status import Status
from hydra.store.base import Claim
from hydra.textsafe import storable_error
from hydra.workflow import AsyncWorkflowContext, Workflow, WorkflowContext, resolved_input_type


def is_infrastructure_error(exc: BaseException) -> bool:
    """True for failures of the database or the network under it (unreachable server,
    dropped connection, locked database past the store's retry window), as opposed to a
    value the database rejected or a bug. Such a failure never uses a workflow attempt."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    from hydra.errors import DatabaseUnavailableError

    if isinstance(exc, (OperationalError, InterfaceError, DatabaseUnavailableError)):
        return True
    # A raw driver error that escaped the store's translation (sqlite3, psycopg, PyMySQL
    # name these classes alike in PEP 249), or the socket under it.
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & {"OperationalError", "InterfaceError"}) or isinstance(
        exc, (ConnectionError, TimeoutError)
    )


def _invoke(workflow: Workflow[Any], ctx: WorkflowContext, req: Any) -> Any:
    if workflow.is_async:
        return asyncio.run(_run_async(workflow, ctx, req))
    return workflow.run(ctx, req)


async def _run_async(workflow: Workflow[Any], ctx: WorkflowContext, req: Any) -> Any:
    return await workflow.run(ctx, req)


@dataclass(frozen=True, slots=True)
class _Input:
    """The preflight passed: the execution's input, decoded for the workflow."""

    value: Any


def execute(
    runtime: Runtime,
    workflow: Workflow[Any] | None,
    claim: Claim,
    *,
    lease_ms: int,
    hooks: RunHooks | None = None,
    on_run: Callable[[Run], None] | None = None,
    monotonic: Callable[[], int] = monotonic_ms,
    claimed_at: int | None = None,
) -> Outcome:
    """Run one claimed execution until it completes, fails, suspends or loses its lease.

    The run is tracked in ``runtime.registry`` while it is in flight (so that a cancel
    through the engine stops it at once). ``on_run`` receives the ``Run`` before the
    workflow starts (the worker keeps it to mark it lost when a heartbeat fails).
    Exceptions from ``hooks`` (simulated crashes) propagate untouched: to the store the
    worker simply stopped. ``monotonic`` is the clock the run's lease guard measures with
    (ms; the test environment passes its fake clock), ``claimed_at`` its reading taken
    before the claim was sent.

    When the database fails under the run (``is_infrastructure_error``) the run stops,
    writes nothing more and gives the execution back without using an attempt
    (``Outcome.INTERRUPTED``); if even that write fails, the lease stays under this
    worker's id and the worker releases it once the database answers
    (``Worker``'s owned-lease sweep).

    Observers get ``run_ended`` last, however the run ended (a crash too), unless the
    worker reported it first (it gave up on the run: ``Run.report_end``).
    """
    ex = claim.execution
    log = runtime.logger.bind(
        execution_id=ex.id,
        workflow_name=ex.workflow_name,
        attempt=ex.attempt,
        worker_id=claim.lease.worker_id,
    )
    runtime.observers.claimed(claim)
    run: Run | None = None
    end = RunEnd(None)  # until the run says how it ended: a crash
    try:
        start = _preflight(runtime, workflow, claim, log)
        if not isinstance(start, _Input):
            end = start
            return _outcome(end)
        assert workflow is not None  # the preflight released a claim without one
        run = Run(
            runtime,
            claim,
            lease_ms=lease_ms,
            hooks=hooks,
            logger=log,
            monotonic=monotonic,
            claimed_at=claimed_at,
        )
        runtime.registry.track(run)
        if on_run is not None:
            on_run(run)
        runtime.observers.run_started(run, claim)
        end = _run_workflow(runtime, workflow, claim, run, log, start.value)
        return _outcome(end)
    except LeaseLostError as exc:
        if run is not None:
            run.mark_lost()
        log.warning("abandoning execution %s: %s", ex.id, exc)
        runtime.observers.lease_lost(claim)
        end = _ended(Outcome.LOST, exc)
        return Outcome.LOST
    except Exception as exc:
        # One of the loop's own writes (the final transition, a release) failed.
        if not is_infrastructure_error(exc):
            end = _ended(None, exc)
            raise  # a bug or a rejected value: the worker reports it, the lease expires
        end = _interrupted(runtime, claim, log, exc)
        return _outcome(end)
    except BaseException as exc:  # a simulated crash (hydra.testing), KeyboardInterrupt
        end = _ended(None, exc)
        raise
    finally:
        if run is not None:
            runtime.registry.untrack(run)
        if run is None or run.report_end():
            runtime.observers.run_ended(claim, end)


def _ended(outcome: Outcome | None, exc: BaseException) -> RunEnd:
    """A run that ``exc`` ended (or crashed, ``outcome`` None)."""
    error_type, message = describe(exc)
    return RunEnd(outcome, error_type, message, exc)


def _outcome(end: RunEnd) -> Outcome:
    """What ``execute`` returns for a run that ended (not crashed) as ``end`` says."""
    assert end.outcome is not None, end
    return end.outcome


def _preflight(
    runtime: Runtime, workflow: Workflow[Any] | None, claim: Claim, log: HydraLogger
) -> RunEnd | _Input:
    """What is checked before the workflow's code is called: the execution's timeout, a
    takeover with no attempt left, a workflow not registered here, an input that does
    not decode. Returns how the run ended, or the decoded input."""
    ex = claim.execution
    now = runtime.clock.now_ms()
    if claim.takeover:
        log.warning(
            "took over execution %s after its lease expired (attempt %d of %d)",
            ex.id,
            ex.attempt,
            ex.max_attempts,
        )
    if ex.timeout_at is not None and now >= ex.timeout_at:
        return _finish_failed(
            runtime,
            claim,
            log,
            "WorkflowTimeoutError",
            f"execution exceeded its timeout of {ex.timeout_ms} ms",
        )
    if claim.takeover and ex.attempt > ex.max_attempts:
        return _finish_failed(
            runtime,
            claim,
            log,
            "LeaseExpiredError",
            f"the worker running attempt {ex.attempt - 1} stopped heartbeating and no "
            f"attempts are left (max_attempts={ex.max_attempts})",
        )
    if workflow is None:
        # Claims only name registered workflows; this is a registration race.
        runtime.store.release(claim.lease, now_ms=now)
        return RunEnd(Outcome.RELEASED)
    try:
        return _Input(runtime.marshaller.unmarshal(ex.input, resolved_input_type(workflow)))
    except PayloadError as exc:
        return _finish_failed(
            runtime, claim, log, "PayloadError", f"cannot decode input: {exc}", exc
        )


#: A parked execution is tried again after 1 minute, then 2, 4... at most an hour.
PARK_BASE_MS = 60_000
PARK_MAX_MS = 3_600_000


def _run_workflow(
    runtime: Runtime, workflow: Workflow[Any], claim: Claim, run: Run, log: HydraLogger, req: Any
) -> RunEnd:
    """Call the workflow's code with ``req`` and end the run as it came out of it."""
    ctx = (AsyncWorkflowContext if workflow.is_async else WorkflowContext)(run)
    output: Any = None
    try:
        output = _invoke(workflow, ctx, req)
    except Suspended:
        return RunEnd(Outcome.SUSPENDED)
    except RunStopped:
        pass  # the run's state says why: lost or interrupted, concluded below
    except Exception as exc:
        if not (run.lost or run.interrupted is not None):
            if run.suspended:
                return RunEnd(Outcome.SUSPENDED)
            violation = _violation(run, "raised " + type(exc).__name__)
            if violation is not None:
                return _park(runtime, claim, log, violation)
            return _fail_or_retry(runtime, claim, run, log, exc)
    if not (run.lost or run.interrupted is not None or run.suspended):
        violation = _violation(run, "returned")
        if violation is not None:
            return _park(runtime, claim, log, violation)
    return _conclude(runtime, claim, run, log, output)


def _violation(run: Run, how: str) -> NonDeterminismError | None:
    """The mismatch with the history this run met, or, for code that returned or raised
    while it was still replaying (stored checkpoints not reached), that one; else None.
    A timed-out run is no mismatch: the timeout ends it."""
    if run.violation is not None:
        return run.violation
    if run.timed_out or not run.replaying:
        return None
    missing = run.unreached()
    return run.diverged(
        run.position,
        ", ".join(repr(n) for n in missing),
        f"code that {how}",
        f"the code {how} before reaching checkpoints it reached before: "
        + ", ".join(repr(n) for n in missing),
    )


def _park(
    runtime: Runtime, claim: Claim, log: HydraLogger, violation: NonDeterminismError
) -> RunEnd:
    """Give the execution back to be tried later (a fixed deploy resumes it by itself):
    no attempt used, the error kept for display, the delay growing with each park."""
    ex = claim.execution
    delay = min(PARK_BASE_MS * 2 ** min(ex.parks, 16), PARK_MAX_MS)
    now = runtime.clock.now_ms()
    error_type, message = storable_error("NonDeterminismError", str(violation))
    runtime.store.park(
        claim.lease,
        wake_at_ms=now + delay,
        error_type=error_type,
        error_message=message,
        now_ms=now,
    )
    log.error(
        "execution %s parked: %s; tried again in %d s (hydra executions retry resumes it "
        "at once), no attempt used",
        ex.id,
        message,
        delay // 1000,
    )
    runtime.observers.run_parked(claim, message)
    return RunEnd(Outcome.PARKED, error_type, message, violation)


def _conclude(runtime: Runtime, claim: Claim, run: Run, log: HydraLogger, output: Any) -> RunEnd:
    """The workflow's code returned ``output`` (or was unwound by ``RunStopped``): end the
    run as its state says. Raises ``LeaseLostError`` for a run whose lease is gone."""
    ex = claim.execution
    if run.lost:
        raise LeaseLostError(run.lost_reason or f"execution {ex.id} lost its lease")
    if run.interrupted is not None:
        failure = run.interrupted
        if is_infrastructure_error(failure) or not isinstance(failure, Exception):
            return _interrupted(runtime, claim, log, failure)
        # The database rejected a write (not a connection problem): a workflow
        # failure like any other, so an execution that keeps hitting it ends failed.
        return _fail_or_retry(runtime, claim, run, log, failure)
    if run.suspended:
        # The workflow swallowed the suspension (a bare ``except BaseException``).
        return RunEnd(Outcome.SUSPENDED)
    if run.timed_out:
        # The workflow caught the WorkflowTimeoutError: the timeout still holds.
        return _finish_failed(
            runtime,
            claim,
            log,
            "WorkflowTimeoutError",
            f"execution exceeded its timeout of {ex.timeout_ms} ms",
        )
    try:
        data = runtime.payloads.check(runtime.marshaller.marshal(output), "the output")
    except PayloadError as exc:
        return _finish_failed(
            runtime, claim, log, "PayloadError", f"cannot encode the workflow's output: {exc}", exc
        )
    run.ending = True
    runtime.store.finish(
        claim.lease,
        status=Status.COMPLETED,
        now_ms=runtime.clock.now_ms(),
        output=data,
        parent_id=ex.parent_id,
    )
    log.info("execution %s completed", ex.id)
    runtime.finished(claim, Status.COMPLETED)
    return RunEnd(Outcome.COMPLETED)


def _interrupted(runtime: Runtime, claim: Claim, log: HydraLogger, exc: BaseException) -> RunEnd:
    """The database failed under the run: give the execution back with no attempt used."""
    ex = claim.execution
    log.warning(
        "run of execution %s stopped: the database failed (%s: %s); it resumes from its "
        "checkpoints without using an attempt",
        ex.id,
        type(exc).__name__,
        exc,
    )
    try:
        runtime.store.release(claim.lease, now_ms=runtime.clock.now_ms())
    except Exception as again:
        log.warning(
            "could not give execution %s back yet (%s); its worker releases it when the "
            "database answers",
            ex.id,
            type(again).__name__,
        )
    runtime.observers.run_interrupted(claim)
    return _ended(Outcome.INTERRUPTED, exc)


def _fail_or_retry(
    runtime: Runtime, claim: Claim, run: Run, log: HydraLogger, exc: Exception
) -> RunEnd:
    ex = claim.execution
    error_type, message = describe(exc)
    now = runtime.clock.now_ms()
    timed_out = run.timed_out or (ex.timeout_at is not None and now >= ex.timeout_at)
    # A step's own retries are spent once StepFailedError escapes, and compensation code
    # may already have run: retrying the workflow would replay the same failure.
    final = isinstance(
        exc,
        (
            NonRetryableError,
            StepFailedError,
            DuplicateStepError,
            WaitTimeoutError,
            ChildFailedError,
        ),
    )
    if timed_out or final or ex.attempt >= ex.max_attempts:
        if timed_out and not isinstance(exc, WorkflowTimeoutError):
            error_type, message = "WorkflowTimeoutError", f"{error_type}: {message}"
        log.warning(
            "execution %s failed on attempt %d of %d: %s: %s",
            ex.id,
            ex.attempt,
            ex.max_attempts,
            error_type,
            message,
            exc_info=exc,
        )
        run.ending = True
        return _finish_failed(runtime, claim, None, error_type, message, exc)
    run_at = now + workflow_backoff_ms(ex.retry_backoff_ms, ex.attempt)
    run.ending = True
    runtime.store.schedule_retry(
        claim.lease, run_at_ms=run_at, error_type=error_type, error_message=message, now_ms=now
    )
    log.info(
        "execution %s attempt %d failed (%s: %s); attempt %d in %d ms",
        ex.id,
        ex.attempt,
        error_type,
        message,
        ex.attempt + 1,
        run_at - now,
    )
    runtime.observers.run_retry_scheduled(claim)
    return RunEnd(Outcome.RETRY_SCHEDULED, error_type, message, exc)


def _finish_failed(
    runtime: Runtime,
    claim: Claim,
    log: HydraLogger | None,
    error_type: str,
    message: str,
    exc: BaseException | None = None,
) -> RunEnd:
    # Messages built here may embed user text ("cannot decode input: ..."): storable too.
    error_type, message = storable_error(error_type, message)
    runtime.store.finish(
        claim.lease,
        status=Status.FAILED,
        now_ms=runtime.clock.now_ms(),
        error_type=error_type,
        error_message=message,
        parent_id=claim.execution.parent_id,
    )
    if log is not None:
        log.warning("execution %s failed: %s: %s", claim.execution.id, error_type, message)
    runtime.finished(claim, Status.FAILED)
    return RunEnd(Outcome.FAILED, error_type, message, exc)


logging.getLogger("hydra").addHandler(logging.NullHandler())

# ``Observer``, ``Outcome`` and ``RunHooks`` live in ``hydra.events``, ``Run`` and its
# helpers in ``hydra.run``; they stay importable from here, where they were first defined.
__all__ = [
    "LEASE_GUARD_FRACTION",
    "Observer",
    "Outcome",
    "Run",
    "RunHooks",
    "RunStopped",
    "Suspended",
    "describe",
    "execute",
    "is_infrastructure_error",
    "monotonic_ms",
]
