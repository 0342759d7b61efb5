"""``hydra.gather``: steps that run side by side, each checkpointed on its own.

Every branch is an ordinary step (a row of its own, named by its key, with its own retry
policy), so replay, step attempts and the trace treat it as any other. The run first
prepares every branch in the mapping's order (the replay check and the step order, so
the stored order never depends on which branch finished first), then runs the bodies of
those without a checkpoint: in a pool of threads in a sync workflow, as asyncio tasks in
an async one. Whatever happens, every branch settles (its checkpoint or failure written)
before the gather ends it: then an exception that is no step failure (the run stopped,
a simulated crash) is raised, else the first branch in the mapping's order that used up
its attempts raises its ``StepFailedError``, else, if branches wait for a retry, the run
suspends once, until the earliest is due.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar, overload

from hydra.attempts import Attempt, Done, Prepared, Replayed, Retry
from hydra.clock import duration_ms
from hydra.errors import StepFailedError
from hydra.retry import RetryPolicy
from hydra.run import Run
from hydra.steps import _return_annotation
from hydra.workflow import AsyncWorkflowContext, WorkflowContext, validate_name

T = TypeVar("T")

#: the most threads a sync workflow's gather runs bodies in unless ``max_concurrency``
#: says otherwise (fewer when fewer branches have to run)
DEFAULT_MAX_THREADS = 8


@dataclass(frozen=True, slots=True)
class _Raised:
    """A branch that ended in an exception (``StepFailedError`` or one that stops the run)."""

    error: BaseException


_Outcome = Done | Retry | _Raised


@overload
def gather(  # type: ignore[overload-overlap]
    ctx: AsyncWorkflowContext,
    steps: Mapping[str, Callable[[], Awaitable[T]] | Callable[[], T]],
    *,
    retry: RetryPolicy | None = None,
    timeout: timedelta | float | None = None,
    max_concurrency: int | None = None,
) -> Awaitable[dict[str, T]]: ...


@overload
def gather(
    ctx: WorkflowContext,
    steps: Mapping[str, Callable[[], T]],
    *,
    retry: RetryPolicy | None = None,
    timeout: timedelta | float | None = None,
    max_concurrency: int | None = None,
) -> dict[str, T]: ...


def gather(
    ctx: WorkflowContext,
    steps: Mapping[str, Callable[[], Any]],
    *,
    retry: RetryPolicy | None = None,
    timeout: timedelta | float | None = None,
    max_concurrency: int | None = None,
) -> Any:
    """Run the steps of ``steps`` (name -> zero-argument function) concurrently; their
    results by name, in the mapping's order. In an ``async def run`` workflow, await it.

    Each is an ordinary step named by its key: checkpointed on its own, retried per
    ``retry`` (default ``RetryPolicy()``), each attempt bounded by ``timeout``, its
    result decoded as ``hydra.step`` decodes it (the function's return annotation). On
    replay only the steps without a checkpoint run. The steps are stored in the mapping's
    order, whichever finishes first.

    Sync workflows run the bodies in a pool of threads, at most ``max_concurrency``
    (default: one per step to run, at most 8); async ones as asyncio tasks, at most
    ``max_concurrency`` at a time (default: no limit). An async step function in a sync
    workflow runs on an event loop of its own thread, as with ``hydra.step``.

    Every step settles before this returns or raises: if one has used up its attempts,
    the ``StepFailedError`` of the first such step in the mapping's order is raised (the
    workflow can catch it); otherwise, if some failed with attempts left, the execution
    suspends once, until the earliest retry is due, and only those run again.
    """
    if not isinstance(steps, Mapping):
        raise TypeError(f"gather() takes a mapping of step name -> function, got {steps!r}")
    for name, fn in steps.items():
        if not isinstance(name, str):
            raise TypeError(f"gather(): step names must be str, got {name!r}")
        validate_name(name, "step name")
        if not callable(fn):
            raise TypeError(f"step {name!r}: fn must be a zero-argument callable, got {fn!r}")
    if max_concurrency is not None and (
        isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int)
    ):
        raise TypeError(f"max_concurrency must be an int or None, got {max_concurrency!r}")
    if max_concurrency is not None and max_concurrency < 1:
        raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
    timeout_ms = None if timeout is None else duration_ms(timeout, "gather timeout")
    branches = dict(steps)
    if isinstance(ctx, AsyncWorkflowContext):
        return _gather_async(ctx._run, branches, retry, timeout_ms, max_concurrency)
    return _gather_sync(ctx._run, branches, retry, timeout_ms, max_concurrency)


def _prepare(
    run: Run, branches: Mapping[str, Callable[[], Any]], retry: RetryPolicy | None
) -> dict[str, Prepared | _Raised]:
    """Every branch's replay check and step order, in the mapping's order. A branch whose
    attempts were used up in an earlier run is a failure to raise, as it was then."""
    prepared: dict[str, Prepared | _Raised] = {}
    for name, fn in branches.items():
        try:
            prepared[name] = run.prepare_step(name, retry, _return_annotation(fn))
        except StepFailedError as exc:
            prepared[name] = _Raised(exc)
    return prepared


def _gather_sync(
    run: Run,
    branches: Mapping[str, Callable[[], Any]],
    retry: RetryPolicy | None,
    timeout_ms: int | None,
    max_concurrency: int | None,
) -> dict[str, Any]:
    prepared = _prepare(run, branches, retry)
    to_run = {name: p for name, p in prepared.items() if isinstance(p, Attempt)}
    futures: dict[str, Future[Done | Retry]] = {}
    if to_run:
        threads = min(len(to_run), max_concurrency or DEFAULT_MAX_THREADS)
        with ThreadPoolExecutor(threads, thread_name_prefix="hydra-gather") as pool:
            for name, attempt in to_run.items():
                # Each branch in its own copy of the workflow's context (a context is
                # entered by one thread at a time): it holds the branch's current step.
                context = contextvars.copy_context()
                futures[name] = pool.submit(
                    context.run, run.attempt_sync, attempt, branches[name], timeout_ms
                )
            wait(futures.values())
    outcomes: dict[str, Prepared | _Outcome] = dict(prepared)
    for name, future in futures.items():
        error = future.exception()
        outcomes[name] = _Raised(error) if error is not None else future.result()
    retries = _raise_first_failure(run, outcomes)
    if retries:
        run.suspend_for_retries(retries)
    return _values(outcomes)


async def _gather_async(
    run: Run,
    branches: Mapping[str, Callable[[], Any]],
    retry: RetryPolicy | None,
    timeout_ms: int | None,
    max_concurrency: int | None,
) -> dict[str, Any]:
    prepared = _prepare(run, branches, retry)
    limit = asyncio.Semaphore(max_concurrency) if max_concurrency is not None else None

    async def branch(attempt: Attempt, fn: Callable[[], Any]) -> _Outcome:
        try:
            if limit is None:
                return await run.attempt_async(attempt, fn, timeout_ms)
            async with limit:
                return await run.attempt_async(attempt, fn, timeout_ms)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # settled: raised once every branch has settled
            return _Raised(exc)

    names = [name for name, p in prepared.items() if isinstance(p, Attempt)]
    results = await asyncio.gather(
        *(branch(p, branches[name]) for name, p in prepared.items() if isinstance(p, Attempt))
    )
    outcomes: dict[str, Prepared | _Outcome] = dict(prepared)
    outcomes.update(zip(names, results, strict=True))
    retries = _raise_first_failure(run, outcomes)
    if retries:
        await run.retry_when_settled(retries)
    return _values(outcomes)


def _raise_first_failure(run: Run, outcomes: Mapping[str, Prepared | _Outcome]) -> list[Retry]:
    """Raise what ends the gather, if anything: first an exception that is no step
    failure (the run stopped or crashed: nothing more is written), then the first
    ``StepFailedError`` in the mapping's order (the retrying branches' rows written
    first, so that their attempts are recorded). Else the retries to wait for."""
    raised = [o.error for o in outcomes.values() if isinstance(o, _Raised)]
    for error in raised:
        if not isinstance(error, StepFailedError):
            raise error
    retries = [o for o in outcomes.values() if isinstance(o, Retry)]
    if raised:
        for pending in retries:
            run.save_checkpoint(pending.row, run.clock.now_ms())
        raise raised[0]
    return retries


def _values(outcomes: Mapping[str, Prepared | _Outcome]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, outcome in outcomes.items():
        assert isinstance(outcome, (Done, Replayed)), outcome
        values[name] = outcome.value
    return values
