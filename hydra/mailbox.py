"""What ``hydra.receive``, ``hydra.send`` and ``hydra.set_event`` do inside one run.

Each is a checkpoint of the workflow, like a step: named (``receive-1``, ``send-1``,
``event-1``... in call order unless ``name`` is given), replayed from its record, and
written in one fenced transaction with what it does (``hydra.store.base.MessageStore``):

- a receive takes the oldest unread message of its topic and checkpoints it in the same
  transaction (so a crash before the commit leaves the message unread, and a run whose
  lease is gone consumes nothing); with none, it suspends the execution like a sleep,
  its deadline stored, until a message arrives (the sender makes it due) or the deadline
  passes (the receive then checkpoints the timeout and raises ``WaitTimeoutError``, on
  this run and every replay);
- a send stores the message and its checkpoint together, so a replay never sends again;
- an event replaces the value under its key and checkpoints it together.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from hydra.errors import (
    DuplicateStepError,
    ExecutionFinishedError,
    ExecutionNotFoundError,
    WaitTimeoutError,
)
from hydra.run import Run, Suspended
from hydra.status import StepStatus
from hydra.store.base import EventRow, NewMessage, StepRow, detail_of, received_detail

# Message ids of hydra.send: derived from the sender and its checkpoint name, so the same
# send repeated (a transaction retried after a lost reply) is recognised by the store.
_SEND_IDS = uuid.UUID("8d9a4c52-5c0e-4a4f-9d8e-6f1f4a0b7e21")


def _name(run: Run, kind: str, name: str | None) -> str:
    run.counters[kind] = count = run.counters.get(kind, 0) + 1
    return name if name is not None else f"{kind}-{count}"


def _existing(run: Run, name: str, kind: str) -> StepRow | None:
    existing = run.steps.get(name)
    if existing is not None and existing.kind != kind:
        used = "sleep" if existing.status == StepStatus.SLEEPING else existing.kind
        raise DuplicateStepError(f"{kind} name {name!r} is already used by a {used}")
    return existing


def receive(
    run: Run, topic: str, timeout_ms: int | None, result_type: Any, name: str | None
) -> Any:
    """``hydra.receive``: the next message of ``topic``, decoded; suspends if none."""
    name = _name(run, "receive", name)
    payload = wait_for_message(run, name, "receive", topic, timeout_ms, {})
    return run.decode(payload, result_type, name)


def wait_for_message(
    run: Run,
    name: str,
    kind: str,
    topic: str,
    timeout_ms: int | None,
    extra: dict[str, Any],
) -> bytes | None:
    """The payload of the message checkpoint ``name`` (of ``kind``: a receive, or a
    ``wait_child`` on its child's topic) takes: from its checkpoint on replay, else the
    oldest unread one of ``topic``; with none, the execution suspends (``Suspended``)
    until one arrives or the deadline (``timeout_ms`` from the first time here) passes,
    which raises ``WaitTimeoutError`` (checkpointed). ``extra`` joins the checkpoint's
    detail (``topic``, ``deadline``)."""
    order = run.boundary(name, kind)
    existing = _existing(run, name, kind)
    now = run.clock.now_ms()
    if existing is None:
        deadline = None if timeout_ms is None else now + timeout_ms
        started = now
        run.mark_new_work()
    elif existing.status == StepStatus.COMPLETED:
        return existing.output
    elif existing.status == StepStatus.TIMED_OUT:
        raise WaitTimeoutError(existing.error_message or f"{kind} {name!r} timed out")
    else:  # waiting: the deadline stored when the execution first got here
        deadline = detail_of(existing.detail).get("deadline")
        started = existing.started_at if existing.started_at is not None else now
    waiting = StepRow(
        execution_id=run.execution_id,
        name=name,
        order=order,
        status=StepStatus.WAITING,
        attempts=1,
        started_at=started,
        kind=kind,
        detail=run.detail_for(name, {"topic": topic, "deadline": deadline, **extra}),
    )
    past = deadline is not None and now >= deadline
    if run.hooks is not None:
        run.hooks.step_reached(run, name)
    # A suspension is the run's last write: a heartbeat that finds the lease released
    # meanwhile is seeing it, not a loss.
    run.ending = not past
    message = run.store_call(
        lambda: run.store.receive(
            run.lease,
            topic=topic,
            waiting=waiting,
            suspend=not past,
            deadline_ms=deadline,
            now_ms=now,
            lease_ms=run.lease_ms,
        )
    )
    if message is not None:
        run.ending = False
        run.lease_renewed(run.monotonic())
        run.steps[name] = replace(
            waiting,
            status=StepStatus.COMPLETED,
            output=message.payload,
            completed_at=now,
            detail=received_detail(waiting.detail, message.id),
        )
        run.observers.received(run, name, topic, max(now - started, 0))
        _written(run, name)
        return message.payload
    if not past:
        run.steps[name] = waiting
        run.suspended = True
        run.observers.waiting(run, name, topic, deadline)
        _written(run, name)
        raise Suspended()
    # The deadline passed with nothing to receive: checkpoint the timeout, so that every
    # replay raises it again even if a message arrives later (that one stays unread).
    waited = span((deadline or now) - started)
    if kind == "receive":
        what = f"no message on topic {topic!r} arrived within {waited}"
    else:
        what = f"child execution {extra.get('child')} did not end within {waited}"
    error = WaitTimeoutError(f"{what} ({kind} {name!r} of execution {run.execution_id})")
    timed_out = replace(
        waiting,
        status=StepStatus.TIMED_OUT,
        error_type="WaitTimeoutError",
        error_message=str(error),
        completed_at=now,
    )
    run.save_checkpoint(timed_out, now)
    run.observers.wait_timed_out(run, name, topic)
    _written(run, name)
    raise error


def send(run: Run, execution_id: str, topic: str, payload: Any, name: str | None) -> None:
    """``hydra.send``: store a message for another execution, once."""
    name = _name(run, "send", name)
    order = run.boundary(name, "send")
    if _existing(run, name, "send") is not None:
        return  # sent on an earlier run: never again
    run.mark_new_work()
    data = run.runtime.payloads.check(
        run.marshaller.marshal(payload), f"the message of send {name!r} (topic {topic!r})"
    )
    now = run.clock.now_ms()
    message = NewMessage(
        id=str(uuid.uuid5(_SEND_IDS, f"{run.execution_id}/{name}")),
        namespace=run.namespace,
        execution_id=execution_id,
        topic=topic,
        payload=data,
        sent_at_ms=now,
        sender_id=run.execution_id,
    )
    write_checkpoint(
        run,
        name,
        order,
        "send",
        now,
        {"to": execution_id, "topic": topic, "message": message.id},
        lambda row: run.store.send_from_run(
            run.lease, message, row, now_ms=now, lease_ms=run.lease_ms
        ),
        passes=(ExecutionNotFoundError, ExecutionFinishedError),
    )
    run.observers.message_sent(execution_id, topic, run.execution_id)
    run.runtime.registry.wake_workers()  # a local worker may claim the receiver at once
    _written(run, name)


def set_event(run: Run, key: str, value: Any, name: str | None) -> None:
    """``hydra.set_event``: publish ``value`` under ``key`` (last write wins), once."""
    name = _name(run, "event", name)
    order = run.boundary(name, "event")
    if _existing(run, name, "event") is not None:
        return  # published on an earlier run
    run.mark_new_work()
    data = run.runtime.payloads.check(run.marshaller.marshal(value), f"the event {key!r}")
    now = run.clock.now_ms()
    event = EventRow(run.execution_id, key, data, now)
    write_checkpoint(
        run,
        name,
        order,
        "event",
        now,
        {"key": key},
        lambda row: run.store.set_event(run.lease, event, row, now_ms=now, lease_ms=run.lease_ms),
        output=data,
    )
    run.runtime.registry.notify_finished()  # wakes this process's engine.get_event callers
    _written(run, name)


def write_checkpoint(
    run: Run,
    name: str,
    order: int,
    kind: str,
    now: int,
    detail: dict[str, Any],
    write: Callable[[StepRow], object],
    *,
    output: bytes | None = None,
    passes: tuple[type[Exception], ...] = (),
) -> StepRow:
    """Write the checkpoint ``name`` of a ``kind`` that is not a step (a send, an event,
    a child's start), completed at ``now``, with what it does: ``write(row)`` is one
    fenced store call that extends the lease. The run remembers it; the test kit's crash
    points come before the write (``step_reached``) and, by the caller, after it."""
    row = StepRow(
        execution_id=run.execution_id,
        name=name,
        order=order,
        status=StepStatus.COMPLETED,
        attempts=1,
        output=output,
        started_at=now,
        completed_at=now,
        kind=kind,
        detail=run.detail_for(name, detail),
    )
    if run.hooks is not None:
        run.hooks.step_reached(run, name)
    sent = run.monotonic()
    run.store_call(lambda: write(row), passes=passes)
    run.lease_renewed(sent)
    run.steps[name] = row
    return row


def _written(run: Run, name: str) -> None:
    if run.hooks is not None:
        run.hooks.checkpoint_written(run, name)


def span(ms: int) -> str:
    """A duration as people say it: ``3 days``, ``90 minutes``, ``1.5 s``."""
    for unit, size in (("day", 86_400_000), ("hour", 3_600_000), ("minute", 60_000)):
        if ms >= size and ms % size == 0:
            count = ms // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{ms / 1000:g} s"
