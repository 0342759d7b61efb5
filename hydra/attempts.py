"""One attempt of a step: what preparing it gives (``Replayed`` on replay, else the
``Attempt`` to run), how it came out (``Done``, or ``Retry`` for a failure with attempts
left), and how its body is called (a thread for a sync body with a timeout, the event
loop for an async one)."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from hydra.errors import StepTimeoutError
from hydra.retry import RetryPolicy
from hydra.store.base import StepRow


@dataclass(frozen=True, slots=True)
class Replayed:
    """A completed step met on replay: its stored result, decoded."""

    value: Any


@dataclass(slots=True)
class Attempt:
    """An attempt of a step body about to run (its checkpoint not written yet)."""

    name: str
    order: int
    number: int
    policy: RetryPolicy
    result_type: Any
    started_at: int = 0
    #: resets the calling context's current step when the body is left
    token: contextvars.Token[Any] | None = None


#: what preparing a step gives: its stored result (replay), or the attempt to run
Prepared = Replayed | Attempt


@dataclass(frozen=True, slots=True)
class Done:
    """An attempt whose result is checkpointed: the value the workflow gets back."""

    value: Any


@dataclass(frozen=True, slots=True)
class Retry:
    """A failed attempt with attempts left: its ``retrying`` row and when the next
    attempt is due. Written by ``suspend_for_retries`` (or ``retry_when_settled``)."""

    row: StepRow
    wake_ms: int
    error: BaseException


def call_sync(fn: Callable[[], Any], timeout_ms: int | None, name: str) -> Any:
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

    # In a copy of the caller's context: the helper thread is inside the step too.
    context = contextvars.copy_context()
    thread = threading.Thread(
        target=context.run, args=(target,), name=f"hydra-step-{name}", daemon=True
    )
    thread.start()
    thread.join(timeout_ms / 1000)
    if thread.is_alive():
        raise StepTimeoutError(f"step {name!r} did not finish within {timeout_ms} ms")
    if "error" in box:
        raise box["error"]
    return box.get("value")


async def await_body(value: Awaitable[Any], timeout_ms: int | None, name: str) -> Any:
    if timeout_ms is None:
        return await value
    try:
        return await asyncio.wait_for(value, timeout_ms / 1000)
    except TimeoutError:
        raise StepTimeoutError(f"step {name!r} did not finish within {timeout_ms} ms") from None
