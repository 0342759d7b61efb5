"""``hydra.step``, ``hydra.sleep`` and friends: what workflow code calls."""

from __future__ import annotations

import contextlib
import inspect
import typing
import weakref
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar, overload

from hydra import children, mailbox, patches
from hydra.children import ChildHandle
from hydra.clock import duration_ms, to_ms
from hydra.retry import RetryPolicy
from hydra.workflow import (
    AsyncWorkflowContext,
    Workflow,
    WorkflowContext,
    user_topic,
    validate_name,
)

T = TypeVar("T")


@overload
def step(
    ctx: AsyncWorkflowContext,
    name: str,
    fn: Callable[[], Awaitable[T]] | Callable[[], T],
    *,
    retry: RetryPolicy | None = None,
    timeout: timedelta | float | None = None,
    result_type: Any = None,
) -> Awaitable[T]: ...


@overload
def step(
    ctx: WorkflowContext,
    name: str,
    fn: Callable[[], T],
    *,
    retry: RetryPolicy | None = None,
    timeout: timedelta | float | None = None,
    result_type: Any = None,
) -> T: ...


def step(
    ctx: WorkflowContext,
    name: str,
    fn: Callable[[], Any],
    *,
    retry: RetryPolicy | None = None,
    timeout: timedelta | float | None = None,
    result_type: Any = None,
) -> Any:
    """Run ``fn()`` once and checkpoint its result; on replay return the checkpoint.

    ``fn`` takes no arguments (use a lambda or ``functools.partial``). Its result is stored
    through the engine's marshaller and what the workflow gets back, on the first run and
    on every replay alike, is the decoded checkpoint: declare ``result_type`` (or give
    ``fn`` a return annotation) to get a dataclass or model back instead of plain JSON.

    Failures are retried per ``retry`` (default ``RetryPolicy()``: 3 attempts, 1 s
    doubling backoff), each wait a durable sleep. When the attempts are used up,
    ``StepFailedError`` is raised here. ``timeout`` bounds each attempt.

    A step that was in flight when its worker died runs again (at-least-once); a step whose
    checkpoint was written never runs again. In an ``async def run`` workflow, await it;
    steps awaited together (``asyncio.gather(hydra.step(...), hydra.step(...))``) run side
    by side, and one that fails with attempts left suspends the execution only once the
    others in flight have written their checkpoints. ``hydra.gather`` runs steps side by
    side in sync workflows too. A step called inside another step's function (or from a
    thread it started) raises ``RuntimeError``: steps cannot be nested.

    ``name`` follows hydra's name rules (at most 255 characters, no control characters,
    see ``validate_name``): an invalid one raises ``InvalidNameError`` before anything runs,
    which fails the execution without retries. A result larger than the engine's
    ``payload_limit`` fails the step at once, without retries.
    """
    validate_name(name, "step name")
    if not callable(fn):
        raise TypeError(f"step {name!r}: fn must be a zero-argument callable, got {fn!r}")
    timeout_ms = None if timeout is None else duration_ms(timeout, f"step {name!r} timeout")
    if result_type is None:
        result_type = _return_annotation(fn)
    run = ctx._run
    if isinstance(ctx, AsyncWorkflowContext):
        return run.step_async(name, fn, retry, timeout_ms, result_type)
    return run.step_sync(name, fn, retry, timeout_ms, result_type)


@overload
def step_void(  # type: ignore[overload-overlap]
    ctx: AsyncWorkflowContext,
    name: str,
    fn: Callable[[], Any],
    *,
    retry: RetryPolicy | None = None,
    timeout: timedelta | float | None = None,
) -> Awaitable[None]: ...


@overload
def step_void(
    ctx: WorkflowContext,
    name: str,
    fn: Callable[[], Any],
    *,
    retry: RetryPolicy | None = None,
    timeout: timedelta | float | None = None,
) -> None: ...


def step_void(
    ctx: WorkflowContext,
    name: str,
    fn: Callable[[], Any],
    *,
    retry: RetryPolicy | None = None,
    timeout: timedelta | float | None = None,
) -> Any:
    """A step whose result is discarded (stored as null)."""

    def body() -> Any:
        value = fn()
        if hasattr(value, "__await__"):
            return _discard(value)
        return None

    result: Any = step(ctx, name, body, retry=retry, timeout=timeout, result_type=Any)
    if isinstance(ctx, AsyncWorkflowContext):
        return _none_after(result)
    return None


async def _discard(value: Awaitable[Any]) -> None:
    await value


async def _none_after(result: Awaitable[Any]) -> None:
    await result


@overload
def sleep(  # type: ignore[overload-overlap]
    ctx: AsyncWorkflowContext, duration: timedelta | float, *, name: str | None = None
) -> Awaitable[None]: ...


@overload
def sleep(
    ctx: WorkflowContext, duration: timedelta | float, *, name: str | None = None
) -> None: ...


def sleep(ctx: WorkflowContext, duration: timedelta | float, *, name: str | None = None) -> Any:
    """Suspend the execution durably for ``duration`` (a timedelta or seconds).

    The wake time is checkpointed, the status becomes ``sleeping`` and the lease and the
    worker thread are released; any worker resumes the execution when it is due. Replay
    does not sleep again. Sleeps are named ``sleep-1``, ``sleep-2``... in call order
    unless ``name`` is given.
    """
    ms = duration_ms(duration, "sleep duration")
    run = ctx._run
    now = run.clock.now_ms()
    if name is not None:
        validate_name(name, "sleep name")
    if isinstance(ctx, AsyncWorkflowContext):
        return _async_sleep(run, now + ms, name, now)
    run.sleep_until_ms(now + ms, name, now)
    return None


@overload
def sleep_until(  # type: ignore[overload-overlap]
    ctx: AsyncWorkflowContext, when: datetime, *, name: str | None = None
) -> Awaitable[None]: ...


@overload
def sleep_until(ctx: WorkflowContext, when: datetime, *, name: str | None = None) -> None: ...


def sleep_until(ctx: WorkflowContext, when: datetime, *, name: str | None = None) -> Any:
    """Suspend the execution durably until ``when`` (naive datetimes are taken as UTC)."""
    if not isinstance(when, datetime):
        raise TypeError(f"sleep_until takes a datetime, got {when!r}")
    if name is not None:
        validate_name(name, "sleep name")
    run = ctx._run
    if isinstance(ctx, AsyncWorkflowContext):
        return _async_sleep(run, to_ms(when), name)
    run.sleep_until_ms(to_ms(when), name)
    return None


async def _async_sleep(run: Any, wake_ms: int, name: str | None, now_ms: int | None = None) -> None:
    run.sleep_until_ms(wake_ms, name, now_ms)


# -- messages and events (hydra.mailbox does the work) -----------------------------------
@overload
def receive(
    ctx: AsyncWorkflowContext,
    topic: str,
    *,
    timeout: timedelta | float | None = None,
    result_type: Any = None,
    name: str | None = None,
) -> Awaitable[Any]: ...


@overload
def receive(
    ctx: WorkflowContext,
    topic: str,
    *,
    timeout: timedelta | float | None = None,
    result_type: Any = None,
    name: str | None = None,
) -> Any: ...


def receive(
    ctx: WorkflowContext,
    topic: str,
    *,
    timeout: timedelta | float | None = None,
    result_type: Any = None,
    name: str | None = None,
) -> Any:
    """The oldest unread message of ``topic`` sent to this execution, decoded (into
    ``result_type`` if given, else plain JSON).

    With none, the execution suspends durably, like a sleep (status ``sleeping``, lease
    and thread released), until a message of that topic arrives (it wakes the execution
    at once) or ``timeout`` (a timedelta or seconds) passes: then ``WaitTimeoutError`` is
    raised here. The deadline is stored when the execution first gets here: a restart
    does not extend it. Each message is received once, by one receive, even across
    crashes; messages sent before the workflow got here wait for it, oldest first.
    Receives are named ``receive-1``, ``receive-2``... in call order unless ``name`` is
    given. In an ``async def run`` workflow, await it.
    """
    user_topic(topic)
    if name is not None:
        validate_name(name, "receive name")
    timeout_ms = None if timeout is None else duration_ms(timeout, "receive timeout")
    if result_type is None:
        result_type = Any
    run = ctx._run
    if isinstance(ctx, AsyncWorkflowContext):
        return _async(mailbox.receive, run, topic, timeout_ms, result_type, name)
    return mailbox.receive(run, topic, timeout_ms, result_type, name)


@overload
def send(  # type: ignore[overload-overlap]
    ctx: AsyncWorkflowContext,
    execution_id: str,
    topic: str,
    payload: Any = None,
    *,
    name: str | None = None,
) -> Awaitable[None]: ...


@overload
def send(
    ctx: WorkflowContext,
    execution_id: str,
    topic: str,
    payload: Any = None,
    *,
    name: str | None = None,
) -> None: ...


def send(
    ctx: WorkflowContext,
    execution_id: str,
    topic: str,
    payload: Any = None,
    *,
    name: str | None = None,
) -> Any:
    """Send ``payload`` on ``topic`` to another execution (of this namespace), as a
    checkpoint: the message is stored with it, so a replay never sends it again.

    ``ExecutionNotFoundError`` if there is no such execution, ``ExecutionFinishedError``
    if it has ended (nothing is stored either way). Sends are named ``send-1``,
    ``send-2``... in call order unless ``name`` is given.
    """
    if not isinstance(execution_id, str):
        raise TypeError(f"send() takes the receiver's execution id (a str), got {execution_id!r}")
    user_topic(topic)
    if name is not None:
        validate_name(name, "send name")
    run = ctx._run
    if isinstance(ctx, AsyncWorkflowContext):
        return _async(mailbox.send, run, execution_id, topic, payload, name)
    mailbox.send(run, execution_id, topic, payload, name)
    return None


@overload
def set_event(
    ctx: AsyncWorkflowContext, key: str, value: Any, *, name: str | None = None
) -> Awaitable[None]: ...


@overload
def set_event(ctx: WorkflowContext, key: str, value: Any, *, name: str | None = None) -> None: ...


def set_event(ctx: WorkflowContext, key: str, value: Any, *, name: str | None = None) -> Any:
    """Publish ``value`` under ``key`` for this execution (the last write wins), read
    from outside with ``engine.get_event``/``get_events``; checkpointed like a step, so a
    replay does not publish again. Events are named ``event-1``, ``event-2``... in call
    order unless ``name`` is given."""
    validate_name(key, "event key")
    if name is not None:
        validate_name(name, "event name")
    run = ctx._run
    if isinstance(ctx, AsyncWorkflowContext):
        return _async(mailbox.set_event, run, key, value, name)
    mailbox.set_event(run, key, value, name)
    return None


# -- child workflows (hydra.children does the work) --------------------------------------
@overload
def start_child(
    ctx: AsyncWorkflowContext,
    name: str,
    workflow: str | Workflow[Any],
    payload: Any = None,
    **start_options: Any,
) -> Awaitable[ChildHandle]: ...


@overload
def start_child(
    ctx: WorkflowContext,
    name: str,
    workflow: str | Workflow[Any],
    payload: Any = None,
    **start_options: Any,
) -> ChildHandle: ...


def start_child(
    ctx: WorkflowContext,
    name: str,
    workflow: str | Workflow[Any],
    payload: Any = None,
    **start_options: Any,
) -> Any:
    """Start a child execution of ``workflow`` (a name, or the workflow itself) with
    ``payload``, as a checkpoint named ``name``; returns its ``ChildHandle``.

    The child is created exactly once, whatever crashes around the start: its id comes
    from this execution and ``name``, and it is stored with this checkpoint in one
    transaction. ``start_options`` are ``engine.start_workflow``'s (``max_attempts``,
    ``retry_backoff``, ``timeout``, ``run_at``) but ``idempotency_key``. Wait for it with
    ``hydra.wait_child``; a parent that ends without waiting leaves its children running.
    In an ``async def run`` workflow, await it.
    """
    validate_name(name, "child name")
    run = ctx._run
    if isinstance(ctx, AsyncWorkflowContext):
        return _async(children.start_child, run, name, workflow, payload, start_options)
    return children.start_child(run, name, workflow, payload, start_options)


@overload
def wait_child(
    ctx: AsyncWorkflowContext,
    handle: ChildHandle,
    *,
    result_type: Any = None,
    timeout: timedelta | float | None = None,
) -> Awaitable[Any]: ...


@overload
def wait_child(
    ctx: WorkflowContext,
    handle: ChildHandle,
    *,
    result_type: Any = None,
    timeout: timedelta | float | None = None,
) -> Any: ...


def wait_child(
    ctx: WorkflowContext,
    handle: ChildHandle,
    *,
    result_type: Any = None,
    timeout: timedelta | float | None = None,
) -> Any:
    """The child's output (decoded into ``result_type`` if given), once it ends.

    Until then this execution suspends durably (status ``sleeping``, no lease, no
    thread); the child's end wakes it. A child that failed or was cancelled raises
    ``ChildFailedError`` here (catch it to compensate); ``timeout`` (from the first time
    the execution gets here, stored) raises ``WaitTimeoutError``. Checkpointed as
    ``wait-<start name>``: every replay returns (or raises) the same.
    """
    timeout_ms = None if timeout is None else duration_ms(timeout, "wait_child timeout")
    run = ctx._run
    rtype = Any if result_type is None else result_type
    if isinstance(ctx, AsyncWorkflowContext):
        return _async(children.wait_child, run, handle, rtype, timeout_ms)
    return children.wait_child(run, handle, rtype, timeout_ms)


@overload
def call_child(
    ctx: AsyncWorkflowContext,
    name: str,
    workflow: str | Workflow[Any],
    payload: Any = None,
    *,
    result_type: Any = None,
    **start_options: Any,
) -> Awaitable[Any]: ...


@overload
def call_child(
    ctx: WorkflowContext,
    name: str,
    workflow: str | Workflow[Any],
    payload: Any = None,
    *,
    result_type: Any = None,
    **start_options: Any,
) -> Any: ...


def call_child(
    ctx: WorkflowContext,
    name: str,
    workflow: str | Workflow[Any],
    payload: Any = None,
    *,
    result_type: Any = None,
    **start_options: Any,
) -> Any:
    """``start_child`` then ``wait_child``: the child's output (``ChildFailedError`` if it
    failed or was cancelled)."""
    validate_name(name, "child name")
    run = ctx._run
    rtype = Any if result_type is None else result_type
    if isinstance(ctx, AsyncWorkflowContext):
        return _async(_call_child, run, name, workflow, payload, rtype, start_options)
    return _call_child(run, name, workflow, payload, rtype, start_options)


def _call_child(
    run: Any,
    name: str,
    workflow: str | Workflow[Any],
    payload: Any,
    result_type: Any,
    options: dict[str, Any],
) -> Any:
    handle = children.start_child(run, name, workflow, payload, options)
    return children.wait_child(run, handle, result_type, None)


# -- changing code under live executions ---------------------------------------------------
@overload
def patched(ctx: AsyncWorkflowContext, patch_id: str) -> Awaitable[bool]: ...  # type: ignore[overload-overlap]


@overload
def patched(ctx: WorkflowContext, patch_id: str) -> bool: ...


def patched(ctx: WorkflowContext, patch_id: str) -> Any:
    """True when this execution may run the new code of patch ``patch_id``: it got here
    before any later checkpoint was stored. False for an older execution, whose history
    already goes past this point with the old code. The answer is recorded, so every
    replay of one execution gets the same one. Use it to change a workflow's code under
    live executions (see docs/deploys.md: patch, then deprecate, then remove)::

        if hydra.patched(ctx, "fraud-check"):
            hydra.step(ctx, "fraud-check", lambda: check(order))
    """
    run = ctx._run
    if isinstance(ctx, AsyncWorkflowContext):
        return _async(patches.patched, run, patch_id)
    return patches.patched(run, patch_id)


async def _async(call: Callable[..., Any], *args: Any) -> Any:
    # The store call is synchronous, like an async workflow's sleep: it runs when awaited.
    return call(*args)


def _return_annotation(fn: Callable[..., Any]) -> Any:
    """The type a step's result is decoded to: ``fn``'s return annotation, else ``Any``.

    Called on every step: a function without annotations (every lambda) answers at once,
    and the others are resolved once per function object.
    """
    if getattr(fn, "__annotations__", None) == {}:
        return Any  # what typing.get_type_hints would have found: nothing
    try:
        return _RETURN_TYPES[fn]
    except (KeyError, TypeError):  # not cached yet, or not weak-referenceable
        pass
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        return Any  # not cached: a forward reference may resolve later
    hint = _from_hints(fn, hints)
    with contextlib.suppress(TypeError):
        _RETURN_TYPES[fn] = hint
    return hint


def _from_hints(fn: Callable[..., Any], hints: dict[str, Any]) -> Any:
    hint = hints.get("return", Any)
    if inspect.iscoroutinefunction(fn) or hint is None:
        # an async function's annotation is its awaited type; None means "no result"
        return Any if hint is None else hint
    return hint


_RETURN_TYPES: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
