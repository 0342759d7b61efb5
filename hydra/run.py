"""One run of one claimed execution: the state ``hydra.step`` and ``hydra.sleep`` act on.

A ``Run`` replays the workflow's checkpoints (a completed step returns its stored result
without calling its function, an elapsed sleep returns at once), runs new step bodies
and checkpoints them, and suspends durably (a sleep, a step's retry backoff). Every write
is fenced by the run's lease. ``hydra.runner.execute`` builds one per run and decides how
the run ends.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from hydra.errors import (
    DuplicateStepError,
    LeaseLostError,
    NonRetryableError,
    PayloadError,
    StepFailedError,
    StepTimeoutError,
    WorkflowTimeoutError,
)
from hydra.events import RunHooks
from hydra.logs import WORKFLOW_LOGGER_SUFFIX, HydraLogger
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


@dataclass(frozen=True, slots=True)
class _Replayed:
    """A completed step met on replay: its stored result, decoded."""

    value: Any


@dataclass(slots=True)
class _Attempt:
    """An attempt of a step body about to run (its checkpoint not written yet)."""

    name: str
    order: int
    number: int
    policy: RetryPolicy
    result_type: Any
    started_at: int = 0


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
        self.current_step: str | None = None
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
        # Replay: the checkpoints stored before this run began that it has not reached yet.
        self._unreached: set[str] = set(self.steps)
        self._did_new_work = False
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
        return {"step_name": self.current_step, "attempt": self.attempt}

    # -- boundaries ---------------------------------------------------------------------
    def boundary(self, name: str, kind: str) -> int:
        """Checks made before every step and sleep; returns the step's order."""
        if self.current_step is not None:
            if kind in ("step", "sleep"):
                raise RuntimeError(
                    f"{kind} {name!r} was called inside step {self.current_step!r}: "
                    "steps cannot be nested"
                )
            raise RuntimeError(
                f"hydra.{kind} ({name!r}) was called inside the function of step "
                f"{self.current_step!r}: receive, send and set_event are checkpoints of "
                "the workflow itself; call them from the workflow's code, between steps"
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
        if name in self._seen:
            raise DuplicateStepError(
                f"{kind} name {name!r} is used twice in one run of workflow "
                f"{self.workflow_name!r}; every step and sleep needs its own name"
            )
        self._seen.add(name)
        self._unreached.discard(name)
        existing = self.steps.get(name)
        order = existing.order if existing is not None else self._order
        self._order += 1
        return order

    # -- steps ----------------------------------------------------------------------------
    def _prepare(
        self, name: str, retry: RetryPolicy | None, result_type: Any
    ) -> _Replayed | _Attempt:
        """The stored result of a completed step (on replay), else its next attempt."""
        order = self.boundary(name, "step")
        existing = self.steps.get(name)
        previous_attempts = 0
        if existing is not None:
            if existing.status == StepStatus.COMPLETED:
                self.observers.step_cached(self, name)
                return _Replayed(self._decode(existing.output, result_type, name))
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
        attempt = _Attempt(name, order, previous_attempts + 1, policy, result_type)
        if self.hooks is not None:
            self.hooks.step_reached(self, name)
        return attempt

    def _enter(self, attempt: _Attempt) -> None:
        # The last check before a side effect: a run whose lease is gone (a cancel seen
        # by another thread meanwhile) or may have run out does not enter the body.
        if self.lost or self.interrupted is not None:
            raise self._stopped(f"before step {attempt.name!r}")
        self._guard_lease(attempt.name)
        self._did_new_work = True
        attempt.started_at = self.clock.now_ms()
        if self.hooks is not None:
            self.hooks.step_entered(self, attempt.name, attempt.number)
        self.current_step = attempt.name

    def _ran(self, attempt: _Attempt) -> None:
        self.current_step = None
        if self.hooks is not None:
            self.hooks.step_ran(self, attempt.name)

    def _settle(self, attempt: _Attempt, value: Any, error: Exception | None) -> Any:
        """After a step body returned ``value`` or raised ``error`` (sync or async alike):
        checkpoint the result, or record the failure (and retry later, or raise)."""
        self._ran(attempt)
        if error is not None:
            return self._failed(attempt, error)
        return self._succeeded(attempt, value)

    def _succeeded(self, attempt: _Attempt, value: Any) -> Any:
        self.current_step = None
        if self.hooks is not None:
            self.hooks.step_returned(self, attempt.name)
        try:
            data = self.runtime.payloads.check(
                self.marshaller.marshal(value), f"the result of step {attempt.name!r}"
            )
        except PayloadError as exc:
            # The same function would return the same unstorable value: no retry helps.
            return self._failed(attempt, exc, permanent=True)
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
        )
        sent = self.monotonic()
        self.store_call(
            lambda: self.store.save_step(self.lease, row, now_ms=now, lease_ms=self.lease_ms)
        )
        self.lease_renewed(sent)
        self.steps[attempt.name] = row
        elapsed = now - attempt.started_at
        self.observers.step_finished(self, attempt.name, "completed", elapsed)
        return self._decode(data, attempt.result_type, attempt.name)

    def _failed(self, attempt: _Attempt, exc: BaseException, permanent: bool = False) -> Any:
        """Record a failed attempt; raise StepFailedError, or suspend until the retry."""
        self.current_step = None
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
        )
        self.observers.step_finished(self, attempt.name, "failed", now - attempt.started_at)
        if exhausted:
            sent = self.monotonic()
            self.store_call(
                lambda: self.store.save_step(self.lease, row, now_ms=now, lease_ms=self.lease_ms)
            )
            self.lease_renewed(sent)
            self.steps[attempt.name] = row
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
        self.ending = True
        self.store_call(
            lambda: self.store.suspend(self.lease, wake_at_ms=wake, now_ms=now, step=row)
        )
        self.steps[attempt.name] = row
        self.suspended = True
        self.observers.step_retry_scheduled(self, attempt.name)
        raise Suspended() from exc

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

    def step_sync(
        self,
        name: str,
        fn: Callable[[], Any],
        retry: RetryPolicy | None,
        timeout_ms: int | None,
        result_type: Any,
    ) -> Any:
        attempt = self._prepare(name, retry, result_type)
        if isinstance(attempt, _Replayed):
            return attempt.value
        self._enter(attempt)
        value: Any = None
        error: Exception | None = None
        try:
            value = _call_sync(fn, timeout_ms, name)
            if inspect.isawaitable(value):
                # An async step function in a sync workflow: run it to completion here.
                value = asyncio.run(_await(value, timeout_ms, name))
        except Exception as exc:
            error = exc
        finally:
            self.current_step = None
        return self._settle(attempt, value, error)

    async def step_async(
        self,
        name: str,
        fn: Callable[[], Any],
        retry: RetryPolicy | None,
        timeout_ms: int | None,
        result_type: Any,
    ) -> Any:
        attempt = self._prepare(name, retry, result_type)
        if isinstance(attempt, _Replayed):
            return attempt.value
        self._enter(attempt)
        value: Any = None
        error: Exception | None = None
        began = monotonic_ms()  # real time, even under a fake clock: the loop really blocked
        try:
            if inspect.iscoroutinefunction(fn):
                value = await _await(fn(), timeout_ms, name)
            else:
                value = _call_sync(fn, timeout_ms, name)
                if inspect.isawaitable(value):
                    value = await _await(value, timeout_ms, name)
        except Exception as exc:
            error = exc
        finally:
            self.current_step = None
        self._warn_overrun(name, timeout_ms, monotonic_ms() - began)
        return self._settle(attempt, value, error)

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
            )
            self.steps[name] = row
        self.ending = True
        self.store_call(
            lambda: self.store.suspend(self.lease, wake_at_ms=wake_ms, now_ms=now, step=row)
        )
        self.suspended = True
        self.observers.slept(self, name, wake_ms)
        raise Suspended()


def _call_sync(fn: Callable[[], Any], timeout_ms: int | None, name: str) -> Any:
    if timeout_ms is None:
        return fn()
    # Python cannot interrupt a running thread: the step runs in a helper thread and is
    # abandoned (it keeps running, its result is discarded) if it overruns.
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name=f"hydra-step-{name}", daemon=True)
    thread.start()
    thread.join(timeout_ms / 1000)
    if thread.is_alive():
        raise StepTimeoutError(f"step {name!r} did not finish within {timeout_ms} ms")
    if "error" in box:
        raise box["error"]
    return box.get("value")


async def _await(value: Awaitable[Any], timeout_ms: int | None, name: str) -> Any:
    if timeout_ms is None:
        return await value
    try:
        return await asyncio.wait_for(value, timeout_ms / 1000)
    except TimeoutError:
        raise StepTimeoutError(f"step {name!r} did not finish within {timeout_ms} ms") from None


def describe(exc: BaseException) -> tuple[str, str]:
    """An exception as (type name, message) for storage (made storable: ``textsafe``)."""
    return storable_error(type(exc).__name__, str(exc) or repr(exc))
