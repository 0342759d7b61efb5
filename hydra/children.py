"""What ``hydra.start_child`` and ``hydra.wait_child`` do inside one run of the parent.

A child is an ordinary execution with ``parent_id`` set. Starting it is a checkpoint of
the parent: the child's row and the parent's checkpoint are written in one transaction
fenced by the parent's lease (``ChildStore.start_child``), and the child's id is derived
from the parent's id and the checkpoint's name, so a crash on either side of the start
never makes a second child nor loses one.

Waiting for it is a receive on the child's own topic (``child_topic``): when the child
ends (completed, failed, cancelled), the store sends its end to the parent in the same
transaction that ends it (``child_ended``), under the lock order of every message (the
receiver's row first), so a child ending while its parent suspends cannot be missed. The
wait checkpoints that message: every replay sees the same outcome. Ends of children the
parent is not waiting for yet are kept, and their waits return at once, so a parent
that starts 1,000 children and waits for each is woken only while a child it waits for
has not ended.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from hydra.clock import duration_ms, to_ms
from hydra.errors import ChildFailedError, DuplicateStepError
from hydra.mailbox import wait_for_message, write_checkpoint
from hydra.queues import QueueCheck
from hydra.run import Run
from hydra.status import Status
from hydra.store.base import NewExecution, child_topic, parse_child_end
from hydra.tracecontext import encode_trace_context
from hydra.workflow import Workflow, resolved_input_type, validate_name

# Child ids: derived from the parent and its checkpoint name (uuid5), the same on every
# replay and after any crash.
_CHILD_IDS = uuid.UUID("5c7f3d7e-2b8e-4f0a-9a51-1d9e3c8b6a42")


@dataclass(frozen=True)
class ChildHandle:
    """A child execution started by ``hydra.start_child``: pass it to
    ``hydra.wait_child``. ``name`` is the start's checkpoint name."""

    execution_id: str
    name: str
    workflow_name: str


def child_id(parent_id: str, name: str) -> str:
    """The id of the child that checkpoint ``name`` of ``parent_id`` starts."""
    return str(uuid.uuid5(_CHILD_IDS, f"{parent_id}/{name}"))


def start_child(
    run: Run,
    name: str,
    workflow: str | Workflow[Any],
    payload: Any,
    options: dict[str, Any],
) -> ChildHandle:
    """``hydra.start_child``: create the child once; on replay, its handle again."""
    workflow_name = workflow.name if isinstance(workflow, Workflow) else workflow
    validate_name(workflow_name, "workflow name")
    order = run.boundary(name, "child")
    existing = run.steps.get(name)
    if existing is not None:
        if existing.kind != "child":
            raise DuplicateStepError(f"child name {name!r} is already used by a {existing.kind}")
        detail = json.loads(existing.detail or "{}")
        return ChildHandle(detail["child"], name, detail.get("workflow", workflow_name))
    run.mark_new_work()
    new = _new_child(run, name, workflow, workflow_name, payload, options)
    now = new.created_at_ms
    write_checkpoint(
        run,
        name,
        order,
        "child",
        now,
        {"child": new.id, "workflow": workflow_name},
        lambda row: run.store.start_child(run.lease, new, row, now_ms=now, lease_ms=run.lease_ms),
    )
    run.observers.execution_started(new.id, workflow_name)
    run.runtime.registry.wake_workers()  # a local worker may claim the child at once
    if run.hooks is not None:
        run.hooks.checkpoint_written(run, name)
    return ChildHandle(new.id, name, workflow_name)


def _new_child(
    run: Run,
    name: str,
    workflow: str | Workflow[Any],
    workflow_name: str,
    payload: Any,
    options: dict[str, Any],
) -> NewExecution:
    """The child's row, with ``engine.start_workflow``'s options and checks."""
    unknown = set(options) - {
        "max_attempts",
        "retry_backoff",
        "timeout",
        "run_at",
        "queue",
        "priority",
        "concurrency_key",
    }
    if unknown:
        raise TypeError(
            f"start_child() got unexpected options {sorted(unknown)}: it takes those of "
            "engine.start_workflow but idempotency_key (a child's identity is its parent "
            "and its checkpoint name)"
        )
    max_attempts = options.get("max_attempts", 3)
    timeout = options.get("timeout")
    run_at = options.get("run_at")
    data = run.runtime.payloads.check(
        run.marshaller.marshal(payload), f"the payload of child {name!r}"
    )
    if isinstance(workflow, Workflow):
        _check_input(run, workflow, data)
    queues = run.runtime.queues or QueueCheck(run.store, run.namespace)
    queue, priority, concurrency_key = queues.check(
        options.get("queue"), options.get("priority", 0), options.get("concurrency_key")
    )
    now = run.clock.now_ms()
    return NewExecution(
        id=child_id(run.execution_id, name),
        namespace=run.namespace,
        workflow_name=workflow_name,
        input=data,
        max_attempts=max_attempts,
        retry_backoff_ms=duration_ms(
            options.get("retry_backoff", timedelta(seconds=1)), "retry_backoff"
        ),
        timeout_ms=None if timeout is None else duration_ms(timeout, "timeout"),
        idempotency_key=None,
        run_at_ms=max(now, to_ms(run_at)) if run_at is not None else now,
        created_at_ms=now,
        trigger_type="child",
        trigger_source=run.execution_id,
        parent_id=run.execution_id,
        queue=queue,
        priority=priority,
        concurrency_key=concurrency_key,
        # The parent run's trace context (hydra.otel links the child's runs to it).
        trace_context=encode_trace_context(run.observers.start_context(run)),
    )


def _check_input(run: Run, workflow: Workflow[Any], data: bytes) -> None:
    """Given the child's workflow itself, its input must decode as a worker will decode
    it (``PayloadError`` into the parent's code otherwise, as ``start_workflow``)."""
    run.marshaller.unmarshal(data, resolved_input_type(workflow))


def wait_child(run: Run, handle: ChildHandle, result_type: Any, timeout_ms: int | None) -> Any:
    """``hydra.wait_child``: the child's output once it ends (``ChildFailedError`` if it
    failed or was cancelled); the parent suspends until then."""
    if not isinstance(handle, ChildHandle):
        raise TypeError(f"wait_child() takes the ChildHandle start_child returned, got {handle!r}")
    name = f"wait-{handle.name}"
    payload = wait_for_message(
        run,
        name,
        "child_wait",
        child_topic(handle.execution_id),
        timeout_ms,
        {"child": handle.execution_id},
    )
    status, output, error_type, error_message = parse_child_end(payload or b"")
    if status != Status.COMPLETED:
        raise ChildFailedError(handle.execution_id, status, error_type, error_message)
    return run.decode(output, result_type, name)
