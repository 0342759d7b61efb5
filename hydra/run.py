"""One run of one claimed execution: the state ``hydra.step`` and ``hydra.sleep`` act on.

A ``Run`` replays the workflow's checkpoints (a completed step returns its stored result
without calling its function, an elapsed sleep returns at once), runs new step bodies
and checkpoints them, and suspends durably (a sleep, a step's retry backoff). Every write
is fenced by the run's lease. ``hydra.runner.execute`` builds one per run and decides how
the run ends.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

from hydra.attempts import (
    Attempt,
    Done,
    Prepared,
    Replayed,
    Retry,
    await_body,
    call_sync,
)
from hydra.errors import (
    DuplicateStepError,
    LeaseLostError,
    MisplacedCheckpointError,
    NonDeterminismError,
    NonRetryableError,
    PayloadError,
    StepFailedError,
    WorkflowTimeoutError,
)
from hydra.events import RunHooks
from hydra.history import CALLS, code_position, describe_checkpoint, kind_of
from hydra.logs import WORKFLOW_LOGGER_SUFFIX, HydraLogger
from hydra.marshal import type_name
from hydra.retry import DEFAULT_STEP_POLICY, RetryPolicy
from hydra.runtime import Runtime
from hydra.status import StepStatus
from hydra.store.base import Claim, StepRow
from hydra.textsafe import storable_error

T = TypeVar("T")


class Suspended(BaseException):
    """Unwinds a run after it was durably suspended (sleep or step backoff).

    A BaseException so that a workflow's ``except Exception`` cannot swallow it.
    """


class RunStopped(BaseException):
    """Unwinds a run that must not go on: its lease is gone (taken over, cancelled, or
    possibly expired while the process was frozen), or the database failed under it.

    A BaseException so that a workflow's ``except Exception`` (a common compensation
    style) cannot swallow it and go on to its next step: the run's state stays stopped,
    so every later step, sleep or send raises it again, whatever the workflow catches.
    """


# A run re-validates its lease (one fenced extension) before entering a step body once
# this fraction of ``claim_timeout`` has passed, by its own monotonic clock, since the
# lease was last extended. The heartbeat thread normally extends it long before; this
# catches a process that was frozen (SIGSTOP, a long GC pause, a suspended VM) and wakes
# up before its heartbeat thread notices that its lease may be gone.
LEASE_GUARD_FRACTION = 0.75
# An async step whose timeout cannot fire (its code blocks the event loop) is reported
# when it overran its timeout by this factor (and by at least OVERRUN_MIN_MS).
OVERRUN_FACTOR = 2
OVERRUN_MIN_MS = 1_000


def monotonic_ms() -> int:
    """The process's monotonic clock in ms: what lease guards measure elapsed time with."""
    return time.monotonic_ns() // 1_000_000


# The step whose body the calling thread or task is inside, as (run, step name). A context
# variable, not an attribute of the run, so that steps running side by side (the threads
# of ``hydra.gather``, the tasks of ``asyncio.gather``) each have their own: asyncio tasks
# copy the context they were created in, and hydra runs every branch thread and every
# helper thread of a step in a copy of its caller's context.
_IN_STEP: contextvars.ContextVar[tuple[Run, str] | None] = contextvars.ContextVar(
    "hydra_in_step", default=None
)


class Run:
    """The state of one run of one execution: what ``hydra.step``/``hydra.sleep`` act on."""

    def __init__(
        self,
        runtime: Runtime,
        claim: Claim,
        *,
        lease_ms: int,
        hooks: RunHooks | None,
        logger: HydraLogger,
        monotonic: Callable[[], int] = monotonic_ms,
        claimed_at: int | None = None,
    ) -> None:
        ex = claim.execution
        self.runtime = runtime
        self.store = runtime.store
        self.clock = runtime.clock
        self.marshaller = runtime.marshaller
        self.observers = runtime.observers
        self.execution_id = ex.id
        self.workflow_name = ex.workflow_name
        self.namespace = ex.namespace
        self.attempt = ex.attempt
        self.max_attempts = ex.max_attempts
        self.timeout_at = ex.timeout_at
        self.lease = claim.lease
        self.lease_ms = lease_ms
        self.hooks = hooks
        self.steps: dict[str, StepRow] = {s.name: s for s in claim.steps}
        self._seen: set[str] = set()
        self._order = 0
        self._sleeps = 0
        #: how many receives, sends and events this run has reached (generated names)
        self.counters: dict[str, int] = {}
        # The steps whose attempts are in flight (entered, checkpoint not written yet), in
        # the order they were entered, by id of their attempt: read by other threads (a
        # live view, the worker's watchdog) and by a failing async step that waits for
        # its siblings. ``_settle_waiters``: futures of such waiting tasks.
        self._running_lock = threading.Lock()
        self._running: dict[int, str] = {}
        self._settle_waiters: list[asyncio.Future[None]] = []
        # Retrying rows written while their suspension waits for siblings to settle.
        self._retrying: list[Retry] = []
        # Observers' run_ended was reported (``report_end``): by the run at its end, or
        # by the worker that gave up on it while its code still ran.
        self._end_reported = False
        # The thread the workflow's code runs in (the one that builds the run).
        self._thread = threading.get_ident()
        self.suspended = False
        self.timed_out = False
        # Set from other threads (heartbeat found the lease gone, or a local cancel).
        self._lost = threading.Event()
        #: the store failed under this run (the database unreachable past the store's
        #: retry window, or it rejected a write): the run stops, writes nothing more
        self.interrupted: BaseException | None = None
        #: the run is writing its final transition (finish, suspend, retry): a heartbeat
        #: that finds the lease gone now is seeing that write, not a loss
        self.ending = False
        #: why the lease is known lost (the store's refusal), for the run's last log line
        self.lost_reason: str | None = None
        self.monotonic = monotonic
        #: when the lease was last extended, by ``monotonic`` (ms), measured from before
        #: the extending call was sent, so it never overstates how long the lease has left
        self.lease_renewed_at = claimed_at if claimed_at is not None else monotonic()
        #: hydra's own lines about this run (never muted)
        self.logger = HydraLogger(logger.logger, dict(logger.extra or {}), self._log_fields)
        # Replay: the checkpoints stored before this run began that it has not reached yet,
        # and the history by position (a ``patched`` answer has none: it is not code the
        # run must reach again, and a patch removed later must not count as missing).
        replayable = [s for s in claim.steps if s.kind != "patch"]
        self._unreached: set[str] = {s.name for s in replayable}
        self._history: dict[int, StepRow] = {s.order: s for s in replayable}
        #: where in the code each checkpoint reached by this run is (``note_position``)
        self._at: dict[str, str] = {}
        self._did_new_work = False
        #: the first mismatch between the code and the stored history this run met: the
        #: execution is parked (``hydra.runner``), whatever the workflow caught
        self.violation: NonDeterminismError | None = None
        #: ``ctx.logger``: the ``workflow`` child of the engine's logger, muted while replaying
        self.workflow_logger = HydraLogger(
            logger.logger.getChild(WORKFLOW_LOGGER_SUFFIX),
            dict(logger.extra or {}),
            self._log_fields,
            muted=lambda: self.replaying,
        )

    # -- state shared with other threads ------------------------------------------------
    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    def mark_lost(self) -> None:
        """The lease is gone: the run stops at its next step boundary."""
        self._lost.set()

    def report_end(self) -> bool:
        """True the first time it is called: the caller reports the run's end to the
        observers (``run_ended`` comes once, from the run or from the worker that gave
        up on it, whichever is first)."""
        with self._running_lock:
            first = not self._end_reported
            self._end_reported = True
        return first

    def lease_renewed(self, sent_at: int) -> None:
        """A lease extension sent at ``sent_at`` (by ``monotonic``) succeeded."""
        if sent_at > self.lease_renewed_at:
            self.lease_renewed_at = sent_at

    def _stopped(self, why: str) -> RunStopped:
        if self.lost:
            return RunStopped(
                f"execution {self.execution_id} was taken over or cancelled; stopping {why}"
            )
        return RunStopped(
            f"the database failed under execution {self.execution_id} "
            f"({type(self.interrupted).__name__}: {self.interrupted}); stopping {why}"
        )

    def store_call(self, call: Callable[[], T], passes: tuple[type[Exception], ...] = ()) -> T:
        """A store write made on the workflow's behalf. Its failures never reach workflow
        code as ordinary exceptions: a lost lease marks the run lost, any other failure
        marks it interrupted, and either unwinds it with ``RunStopped``. ``passes``: the
        store's answers about the workflow's own request (a send to an execution that
        has ended), raised as they are into the workflow."""
        try:
            return call()
        except passes:
            raise
        except LeaseLostError as exc:
            self.lost_reason = str(exc)
            self.mark_lost()
            raise self._stopped("after a refused write") from exc
        except Exception as exc:
            if self.interrupted is None:
                self.interrupted = exc
            raise self._stopped("after a failed write") from exc

    def _guard_lease(self, step_name: str) -> None:
        """Re-validate the lease before a step body if it may be about to expire."""
        sent = self.monotonic()
        if sent - self.lease_renewed_at <= self.lease_ms * LEASE_GUARD_FRACTION:
            return
        lost = self.store_call(
            lambda: self.store.heartbeat(
                [self.lease], now_ms=self.clock.now_ms(), lease_ms=self.lease_ms
            )
        )
        if lost:
            self.mark_lost()
            raise self._stopped(f"before step {step_name!r} (its lease had run out)")
        self.lease_renewed(sent)

    @property
    def replaying(self) -> bool:
        """True while the run re-executes code that an earlier run already executed.

        That is: some checkpoint stored before this run began (a completed or failed
        step, a retrying step, a sleep) has not been reached yet, and the run has done
        nothing new (entered a step body, or reached a sleep that has no checkpoint).
        A run with no stored checkpoints never replays. Code after the last stored
        checkpoint is not replay: it may not have run before (a crash can come right
        after a checkpoint), so it counts as live and may run (and log) again.
        """
        return bool(self._unreached) and not self._did_new_work

    def _log_fields(self) -> dict[str, Any]:
        return {"step_name": self.step_in_context(), "attempt": self.attempt}

    # -- the steps in flight ------------------------------------------------------------
    def step_in_context(self) -> str | None:
        """The step whose body the calling thread or asyncio task is inside, if any."""
        inside = _IN_STEP.get()
        return inside[1] if inside is not None and inside[0] is self else None

    @property
    def current_step(self) -> str | None:
        """The step whose body the caller is inside; asked from elsewhere (another
        thread: a live view, a watchdog), the earliest-entered step still in flight."""
        return self.step_in_context() or next(iter(self.running_steps), None)

    @property
    def running_steps(self) -> tuple[str, ...]:
        """The steps in flight now (entered, checkpoint not yet written), in the order
        they were entered: several at once under ``hydra.gather``/``asyncio.gather``."""
        with self._running_lock:
            return tuple(self._running.values())

    def _enclosing_step(self) -> str | None:
        """The step a checkpoint called here would be nested in: the caller's own step,
        or, from a thread that is neither the workflow's nor a step's (one a step
        function started itself: context variables do not follow a new thread), any
        step in flight."""
        inside = self.step_in_context()
        if inside is None and threading.get_ident() != self._thread:
            inside = next(iter(self.running_steps), None)
        return inside

    # -- boundaries ---------------------------------------------------------------------
    def boundary(self, name: str, kind: str) -> int:
        """Checks made before every checkpoint; returns its order (its position)."""
        self.guard(name, kind)
        if name in self._seen:
            raise DuplicateStepError(
                f"{kind} name {name!r} is used twice in one run of workflow "
                f"{self.workflow_name!r}; every step and sleep needs its own name"
            )
        position = self._order
        at = self.note_position(name)
        if self.replaying:
            stored = self._history.get(position)
            if stored is not None and (stored.name != name or kind_of(stored) != kind):
                code = f"{kind} {name!r}" + (f" (at {at})" if at else "")
                raise self.diverged(position, describe_checkpoint(stored), code)
        self._seen.add(name)
        self._unreached.discard(name)
        existing = self.steps.get(name)
        order = existing.order if existing is not None else self._order
        self._order += 1
        return order

    def note_position(self, name: str) -> str | None:
        """Remember where in the workflow's code checkpoint ``name`` is (``file:line`` of
        the first caller outside hydra), to be stored with it (``detail_for``)."""
        at = code_position()
        if at is not None:
            self._at[name] = at
        return at

    def detail_for(self, name: str, detail: dict[str, Any] | None = None) -> str | None:
        """A checkpoint's stored detail: ``detail`` and where its code is (``"at"``)."""
        found = dict(detail or {})
        at = self._at.get(name)
        if at is not None:
            found["at"] = at
        return json.dumps(found) if found else None

    @property
    def position(self) -> int:
        """How many checkpoints this run has reached (the next one's position)."""
        return self._order

    def diverged(
        self, position: int | None, stored: str | None, code: str | None, detail: str = ""
    ) -> NonDeterminismError:
        """The code no longer matches the history: remember the first mismatch (the run
        ends parked whatever the workflow catches) and return the error to raise."""
        error = NonDeterminismError(self.execution_id, position, stored, code, detail)
        if self.violation is None:
            self.violation = error
        return error

    def unreached(self) -> list[str]:
        """The stored checkpoints this run has not reached, in their order."""
        return [
            s.name
            for s in sorted(self._history.values(), key=lambda s: s.order)
            if s.name in self._unreached
        ]

    def guard(self, name: str, kind: str) -> None:
        """Checks made before every checkpoint, whatever it is: not inside a step's
        function, the run still going (its lease, its database, its timeout), no
        mismatch with the history met already."""
        if self.violation is not None:
            raise self.violation
        enclosing = self._enclosing_step()
        if enclosing is not None:
            if kind in ("step", "sleep"):
                raise MisplacedCheckpointError(
                    f"{kind} {name!r} was called inside step {enclosing!r}: steps cannot be nested"
                )
            call = CALLS.get(kind, kind)
            raise MisplacedCheckpointError(
                f"hydra.{call} ({name!r}) was called inside the function of step "
                f"{enclosing!r}: receive, send, set_event, start_child, wait_child and patched "
                "are checkpoints of the workflow itself; call them from the workflow's code, "
                "between steps"
            )
        if self.lost or self.interrupted is not None:
            raise self._stopped(f"before {kind} {name!r}")
        if self.suspended:
            raise Suspended()
        if self.timeout_at is not None and self.clock.now_ms() >= self.timeout_at:
            self.timed_out = True
            raise WorkflowTimeoutError(
                f"execution {self.execution_id} passed its timeout before {kind} {name!r}"
            )

    # -- steps ----------------------------------------------------------------------------
    def prepare_step(self, name: str, retry: RetryPolicy | None, result_type: Any) -> Prepared:
        """The stored result of a completed step (on replay), else its next attempt.

        Raises ``StepFailedError`` for a step whose attempts were used up in an earlier run.
        """
        order = self.boundary(name, "step")
        existing = self.steps.get(name)
        previous_attempts = 0
        if existing is not None:
            if existing.status == StepStatus.COMPLETED:
                self.observers.step_cached(self, name)
                try:
                    return Replayed(self._decode(existing.output, result_type, name))
                except PayloadError as exc:
                    raise self.diverged(
                        existing.order,
                        f"step {name!r} with its result",
                        f"step {name!r} declaring {type_name(result_type)}",
                        f"the stored result of step {name!r} no longer decodes into "
                        f"{type_name(result_type)}: {exc}",
                    ) from None
            if existing.status == StepStatus.FAILED:
                raise StepFailedError(
                    name,
                    existing.attempts,
                    existing.error_type or "Error",
                    existing.error_message or "",
                )
            if existing.status == StepStatus.SLEEPING or existing.kind != "step":
                used = "sleep" if existing.status == StepStatus.SLEEPING else existing.kind
                raise DuplicateStepError(f"step name {name!r} is already used by a {used}")
            previous_attempts = existing.attempts
        policy = retry if retry is not None else DEFAULT_STEP_POLICY
        attempt = Attempt(name, order, previous_attempts + 1, policy, result_type)
        if self.hooks is not None:
            self.hooks.step_reached(self, name)
        return attempt

    def _enter(self, attempt: Attempt) -> None:
        # The last check before a side effect: a run whose lease is gone (a cancel seen
        # by another thread meanwhile) or may have run out does not enter the body.
        if self.lost or self.interrupted is not None:
            raise self._stopped(f"before step {attempt.name!r}")
        self._guard_lease(attempt.name)
        self._did_new_work = True
        attempt.started_at = self.clock.now_ms()
        if self.hooks is not None:
            self.hooks.step_entered(self, attempt.name, attempt.number)
        attempt.token = _IN_STEP.set((self, attempt.name))
        with self._running_lock:
            self._running[id(attempt)] = attempt.name

    def _leave(self, attempt: Attempt) -> None:
        """The body returned or raised: the calling context is no longer inside it."""
        if attempt.token is not None:
            _IN_STEP.reset(attempt.token)
            attempt.token = None

    def _settled(self, attempt: Attempt) -> None:
        """The attempt is no longer in flight (checkpointed, failed, or abandoned): wake
        the async steps that wait for their siblings to settle before suspending."""
        with self._running_lock:
            self._running.pop(id(attempt), None)
            waiters, self._settle_waiters = self._settle_waiters, []
        for waiter in waiters:
            waiter.get_loop().call_soon_threadsafe(_resolve, waiter)

    def _outcome(self, attempt: Attempt, value: Any, error: Exception | None) -> Done | Retry:
        """After a step body returned ``value`` or raised ``error`` (sync or async alike):
        checkpoint the result, or record the failure (a retry to schedule, or raise)."""
        if self.hooks is not None:
            self.hooks.step_ran(self, attempt.name)
        if error is not None:
            return self._attempt_failed(attempt, error)
        return self._succeeded(attempt, value)

    def _succeeded(self, attempt: Attempt, value: Any) -> Done | Retry:
        if self.hooks is not None:
            self.hooks.step_returned(self, attempt.name)
        try:
            data = self.runtime.payloads.check(
                self.marshaller.marshal(value), f"the result of step {attempt.name!r}"
            )
        except PayloadError as exc:
            # The same function would return the same unstorable value: no retry helps.
            return self._attempt_failed(attempt, exc, permanent=True)
        now = self.clock.now_ms()
        row = StepRow(
            execution_id=self.execution_id,
            name=attempt.name,
            order=attempt.order,
            status=StepStatus.COMPLETED,
            attempts=attempt.number,
            output=data,
            started_at=attempt.started_at,
            completed_at=now,
            detail=self.detail_for(attempt.name),
        )
        self.save_checkpoint(row, now)
        elapsed = now - attempt.started_at
        self.observers.step_finished(self, attempt.name, "completed", elapsed)
        return Done(self._decode(data, attempt.result_type, attempt.name))

    def _attempt_failed(
        self, attempt: Attempt, exc: BaseException, permanent: bool = False
    ) -> Retry:
        """A failed attempt: with its attempts used up, checkpoint it and raise
        ``StepFailedError``; else the retry to schedule (its row not written yet)."""
        policy = attempt.policy
        permanent = (
            permanent
            or isinstance(exc, NonRetryableError)
            or (bool(policy.non_retryable) and isinstance(exc, policy.non_retryable))
        )
        error_type, error_message = describe(exc)
        now = self.clock.now_ms()
        exhausted = permanent or attempt.number >= policy.max_attempts
        row = StepRow(
            execution_id=self.execution_id,
            name=attempt.name,
            order=attempt.order,
            status=StepStatus.FAILED if exhausted else StepStatus.RETRYING,
            attempts=attempt.number,
            error_type=error_type,
            error_message=error_message,
            started_at=attempt.started_at,
            completed_at=now,
            detail=self.detail_for(attempt.name),
        )
        self.observers.step_finished(self, attempt.name, "failed", now - attempt.started_at)
        if exhausted:
            self.save_checkpoint(row, now)
            self.logger.warning(
                "step %s failed after %d attempt(s): %s: %s",
                attempt.name,
                attempt.number,
                error_type,
                error_message,
            )
            raise StepFailedError(attempt.name, attempt.number, error_type, error_message) from exc
        wake = now + policy.backoff_ms(attempt.number)
        self.logger.info(
            "step %s attempt %d failed (%s: %s); retrying in %d ms",
            attempt.name,
            attempt.number,
            error_type,
            error_message,
            wake - now,
        )
        return Retry(row, wake, exc)

    def save_retrying(self, retry: Retry) -> None:
        """Write a failed attempt's ``retrying`` row now; the suspension comes later."""
        self.save_checkpoint(retry.row, self.clock.now_ms())
        self._retrying.append(retry)

    def suspend_for_retries(self, retries: Sequence[Retry]) -> NoReturn:
        """Suspend the run until the earliest of ``retries`` (failed attempts with
        attempts left, nothing else in flight) is due: each ``retrying`` row is written,
        the last in the suspension's own transaction."""
        *first, last = retries
        for retry in first:
            self.save_retrying(retry)
        self._suspend_retrying(last)

    async def retry_when_settled(self, retries: Sequence[Retry]) -> NoReturn:
        """``suspend_for_retries`` for an async run, once no other step of it is in
        flight: the steps running alongside (``asyncio.gather`` tasks) settle first, so
        their checkpoints are written before the run suspends. They may go on to further
        steps meanwhile; the run suspends at the first moment none is in flight."""
        with self._running_lock:
            alone = not self._running
        if alone:
            self.suspend_for_retries(retries)
        # Written now: the workflow may end (another task's error) before this resumes.
        for retry in retries:
            self.save_retrying(retry)
        await self._all_settled()
        if self.lost or self.interrupted is not None:
            raise self._stopped("before suspending for a step's retry")
        if self.suspended:
            raise Suspended()  # another task suspended the run (for these retries too)
        self._suspend_retrying(None)

    def _suspend_retrying(self, last: Retry | None) -> NoReturn:
        """Suspend until the earliest retry due (``last``, written with the suspension,
        and those ``save_retrying`` wrote), then unwind the run."""
        retries = [*self._retrying, *([last] if last is not None else [])]
        wake = min(retry.wake_ms for retry in retries)
        now = self.clock.now_ms()
        row = last.row if last is not None else None
        self.ending = True
        self.store_call(
            lambda: self.store.suspend(self.lease, wake_at_ms=wake, now_ms=now, step=row)
        )
        if row is not None:
            self.steps[row.name] = row
        self.suspended = True
        self._retrying.clear()
        for retry in retries:
            self.observers.step_retry_scheduled(self, retry.row.name)
        raise Suspended() from retries[-1].error

    async def _all_settled(self) -> None:
        """Until no step of this run is in flight (``_settled`` wakes it)."""
        loop = asyncio.get_running_loop()
        while True:
            with self._running_lock:
                if not self._running:
                    return
                waiter: asyncio.Future[None] = loop.create_future()
                self._settle_waiters.append(waiter)
            await waiter

    def step_sync(
        self,
        name: str,
        fn: Callable[[], Any],
        retry: RetryPolicy | None,
        timeout_ms: int | None,
        result_type: Any,
    ) -> Any:
        attempt = self.prepare_step(name, retry, result_type)
        if isinstance(attempt, Replayed):
            return attempt.value
        outcome = self.attempt_sync(attempt, fn, timeout_ms)
        if isinstance(outcome, Retry):
            self.suspend_for_retries([outcome])
        return outcome.value

    def attempt_sync(
        self, attempt: Attempt, fn: Callable[[], Any], timeout_ms: int | None
    ) -> Done | Retry:
        """Run one attempt of a step body in the calling thread and checkpoint its
        result. A failure with attempts left is returned (its row not written: the
        caller suspends the run); one with none left raises ``StepFailedError``."""
        self._enter(attempt)
        try:
            value: Any = None
            error: Exception | None = None
            try:
                with self.observers.step_scope(self, attempt.name, attempt.number):
                    value = call_sync(fn, timeout_ms, attempt.name)
                    if inspect.isawaitable(value):
                        # An async step function in a sync workflow: run it to the end here.
                        value = asyncio.run(await_body(value, timeout_ms, attempt.name))
            except Exception as exc:
                error = exc
            finally:
                self._leave(attempt)
            return self._outcome(attempt, value, error)
        finally:
            self._settled(attempt)

    async def step_async(
        self,
        name: str,
        fn: Callable[[], Any],
        retry: RetryPolicy | None,
        timeout_ms: int | None,
        result_type: Any,
    ) -> Any:
        attempt = self.prepare_step(name, retry, result_type)
        if isinstance(attempt, Replayed):
            return attempt.value
        outcome = await self.attempt_async(attempt, fn, timeout_ms)
        if isinstance(outcome, Retry):
            await self.retry_when_settled([outcome])
        return outcome.value

    async def attempt_async(
        self, attempt: Attempt, fn: Callable[[], Any], timeout_ms: int | None
    ) -> Done | Retry:
        """``attempt_sync`` in the calling asyncio task."""
        self._enter(attempt)
        try:
            value: Any = None
            error: Exception | None = None
            began = monotonic_ms()  # real time, even under a fake clock: the loop blocked
            try:
                with self.observers.step_scope(self, attempt.name, attempt.number):
                    if inspect.iscoroutinefunction(fn):
                        value = await await_body(fn(), timeout_ms, attempt.name)
                    else:
                        value = call_sync(fn, timeout_ms, attempt.name)
                        if inspect.isawaitable(value):
                            value = await await_body(value, timeout_ms, attempt.name)
            except Exception as exc:
                error = exc
            finally:
                self._leave(attempt)
            self._warn_overrun(attempt.name, timeout_ms, monotonic_ms() - began)
            return self._outcome(attempt, value, error)
        finally:
            self._settled(attempt)

    def _decode(self, data: bytes | None, result_type: Any, name: str) -> Any:
        return self.marshaller.unmarshal(data if data is not None else b"null", result_type)

    # -- for the other checkpoints (hydra.mailbox: receive, send, set_event) --------------
    def decode(self, data: bytes | None, result_type: Any, name: str) -> Any:
        """A stored value as the workflow gets it back (``result_type``, else JSON)."""
        return self._decode(data, result_type, name)

    def mark_new_work(self) -> None:
        """The run reached a checkpoint with no record: it is no longer replaying."""
        self._did_new_work = True

    def save_checkpoint(self, row: StepRow, now: int) -> None:
        """Write ``row`` (fenced, extending the lease) and remember it."""
        sent = self.monotonic()
        self.store_call(
            lambda: self.store.save_step(self.lease, row, now_ms=now, lease_ms=self.lease_ms)
        )
        self.lease_renewed(sent)
        self.steps[row.name] = row

    def _warn_overrun(self, name: str, timeout_ms: int | None, took_ms: int) -> None:
        """An async step's timeout is enforced by the event loop: code that blocks the
        loop (a sync call inside ``async def``) cannot be interrupted, so say so."""
        if timeout_ms is None or took_ms < max(
            timeout_ms * OVERRUN_FACTOR, timeout_ms + OVERRUN_MIN_MS
        ):
            return
        self.logger.warning(
            "step %s took %d ms, far past its timeout of %d ms: its code blocked the event "
            "loop, so the timeout could not interrupt it (use an async call, or run the "
            "blocking code with asyncio.to_thread)",
            name,
            took_ms,
            timeout_ms,
        )

    # -- sleeps ---------------------------------------------------------------------------
    def sleep_until_ms(self, wake_ms: int, name: str | None, now_ms: int | None = None) -> None:
        """Durable sleep: checkpoint the wake time, release the lease, unwind the run.

        ``now_ms`` is the instant a relative sleep computed ``wake_ms`` from; the sleep's
        record starts there, so its recorded span is exactly the duration asked for.
        """
        self._sleeps += 1
        name = name if name is not None else f"sleep-{self._sleeps}"
        order = self.boundary(name, "sleep")
        existing = self.steps.get(name)
        if existing is not None:
            if existing.status != StepStatus.SLEEPING:
                raise DuplicateStepError(f"sleep name {name!r} is already used by a step")
            wake_ms = int(json.loads(existing.output or b"0"))
        else:
            self._did_new_work = True
        now = self.clock.now_ms() if now_ms is None or existing is not None else now_ms
        if now >= wake_ms:
            return
        row = None
        if existing is None:
            row = StepRow(
                execution_id=self.execution_id,
                name=name,
                order=order,
                status=StepStatus.SLEEPING,
                attempts=1,
                output=str(wake_ms).encode(),
                started_at=now,
                completed_at=wake_ms,
                kind="sleep",
                detail=self.detail_for(name),
            )
            self.steps[name] = row
        self.ending = True
        self.store_call(
            lambda: self.store.suspend(self.lease, wake_at_ms=wake_ms, now_ms=now, step=row)
        )
        self.suspended = True
        self.observers.slept(self, name, wake_ms)
        raise Suspended()


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def describe(exc: BaseException) -> tuple[str, str]:
    """An exception as (type name, message) for storage (made storable: ``textsafe``)."""
    return storable_error(type(exc).__name__, str(exc) or repr(exc))
