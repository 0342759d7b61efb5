"""Rows to store records and records to bind parameters, for ``SQLStore``.

A full row comes either as a Core ``Row`` or as a driver tuple (``driver.py``), in the
table's column order: the mappers unpack it by position, which both allow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row

from hydra.status import Status, StepStatus
from hydra.store.base import (
    CronFire,
    CronJobRow,
    EventRow,
    ExecutionRow,
    MessageRow,
    NewExecution,
    NewMessage,
    StepAttemptRow,
    StepRow,
)
from hydra.store.queues import waiting_lane
from hydra.store.sql.statements import ATTEMPT_COLUMNS, STEP_COLUMNS


# -- rows to records ---------------------------------------------------------------------
def execution_row(r: Sequence[Any]) -> ExecutionRow:
    """A full ``workflow_executions`` row."""
    (
        id_,
        namespace,
        workflow_name,
        status,
        input_data,
        output_data,
        error_type,
        error_message,
        attempt,
        max_attempts,
        retry_backoff_ms,
        timeout_ms,
        timeout_at,
        idempotency_key,
        created_at,
        started_at,
        completed_at,
        updated_at,
        run_at,
        sleep_until,
        next_retry_at,
        wake_at,
        lease_owner,
        lease_token,
        lease_expires_at,
        trigger_type,
        trigger_source,
        wait_topic,
        parent_id,
        parks,
        queue_name,
        priority,
        concurrency_key,
        _claim_lane,
        trace_context,
    ) = r
    return ExecutionRow(
        id=id_,
        namespace=namespace,
        workflow_name=workflow_name,
        status=Status(status),
        input=bytes(input_data),
        output=bytes(output_data) if output_data is not None else None,
        error_type=error_type,
        error_message=error_message,
        attempt=attempt,
        max_attempts=max_attempts,
        retry_backoff_ms=retry_backoff_ms,
        timeout_ms=timeout_ms,
        timeout_at=timeout_at,
        idempotency_key=idempotency_key,
        created_at=created_at,
        started_at=started_at,
        completed_at=completed_at,
        updated_at=updated_at,
        run_at=run_at,
        sleep_until=sleep_until,
        next_retry_at=next_retry_at,
        wake_at=wake_at,
        lease_owner=lease_owner,
        lease_token=lease_token,
        lease_expires_at=lease_expires_at,
        trigger_type=trigger_type,
        trigger_source=trigger_source,
        wait_topic=wait_topic,
        parent_id=parent_id,
        parks=parks,
        queue=queue_name,
        priority=priority,
        concurrency_key=concurrency_key,
        trace_context=trace_context,
    )


def step_row(r: Sequence[Any]) -> StepRow:
    """A full ``workflow_steps`` row."""
    (
        execution_id,
        step_name,
        step_order,
        status,
        attempts,
        output_data,
        error_type,
        error_message,
        started_at,
        completed_at,
        _updated_at,
        kind,
        detail,
    ) = r
    return StepRow(
        execution_id=execution_id,
        name=step_name,
        order=step_order,
        status=StepStatus(status),
        attempts=attempts,
        output=bytes(output_data) if output_data is not None else None,
        error_type=error_type,
        error_message=error_message,
        started_at=started_at,
        completed_at=completed_at,
        kind=kind,
        detail=detail,
    )


def step_attempt_row(r: Sequence[Any]) -> StepAttemptRow:
    """A full ``workflow_step_attempts`` row."""
    (
        execution_id,
        step_name,
        lease_token,
        attempt,
        status,
        error_type,
        error_message,
        started_at,
        completed_at,
    ) = r
    return StepAttemptRow(
        execution_id=execution_id,
        step_name=step_name,
        lease_token=lease_token,
        attempt=attempt,
        status=StepStatus(status),
        error_type=error_type,
        error_message=error_message,
        started_at=started_at,
        completed_at=completed_at,
    )


def message_row(r: Sequence[Any]) -> MessageRow:
    """A full ``workflow_messages`` row."""
    (
        seq,
        id_,
        namespace,
        execution_id,
        topic,
        payload,
        idempotency_key,
        sender_id,
        sent_at,
        consumed_at,
        consumed_by,
    ) = r
    return MessageRow(
        id=id_,
        namespace=namespace,
        execution_id=execution_id,
        topic=topic,
        payload=bytes(payload),
        seq=int(seq),
        sent_at=sent_at,
        idempotency_key=idempotency_key,
        sender_id=sender_id,
        consumed_at=consumed_at,
        consumed_by=consumed_by,
    )


def event_row(r: Sequence[Any]) -> EventRow:
    """A full ``workflow_events`` row."""
    execution_id, key, value, updated_at = r
    return EventRow(execution_id=execution_id, key=key, value=bytes(value), updated_at=updated_at)


def cron_job_row(r: Row[Any]) -> CronJobRow:
    """A ``cron_jobs`` row (Core only: cron is not on the driver path)."""
    return CronJobRow(
        namespace=r.namespace,
        name=r.name,
        spec=r.cron_spec,
        timezone=r.timezone,
        workflow_name=r.workflow_name,
        payload=bytes(r.payload) if r.payload is not None else None,
        enabled=bool(r.enabled),
        created_at=r.created_at,
        updated_at=r.updated_at,
        next_run_at=r.next_run_at,
    )


def cron_fire_row(r: Row[Any]) -> CronFire:
    """A ``cron_fires`` row."""
    return CronFire(
        namespace=r.namespace,
        job_name=r.job_name,
        slot_at=r.slot_at,
        fired_at=r.fired_at,
        worker_id=r.worker_id,
        execution_id=r.execution_id,
    )


# -- records to bind parameters ----------------------------------------------------------
def new_execution_params(new: NewExecution) -> dict[str, Any]:
    """``INSERT_EXECUTION``'s parameters (``n_<column>``): a pending, never-claimed row."""
    values = {
        "id": new.id,
        "namespace": new.namespace,
        "workflow_name": new.workflow_name,
        "status": Status.PENDING.value,
        "input_data": new.input,
        "attempt": 0,
        "max_attempts": new.max_attempts,
        "retry_backoff_ms": new.retry_backoff_ms,
        "timeout_ms": new.timeout_ms,
        "idempotency_key": new.idempotency_key,
        "created_at": new.created_at_ms,
        "updated_at": new.created_at_ms,
        "run_at": new.run_at_ms,
        "wake_at": new.run_at_ms,
        "lease_token": 0,
        "trigger_type": new.trigger_type,
        "trigger_source": new.trigger_source,
        "parent_id": new.parent_id,
        "queue_name": new.queue,
        "priority": new.priority,
        "concurrency_key": new.concurrency_key,
        "claim_lane": waiting_lane(new.queue, new.priority, started=False),
        "trace_context": new.trace_context,
    }
    return {f"n_{k}": v for k, v in values.items()}


def message_values(message: NewMessage) -> dict[str, Any]:
    """A new ``workflow_messages`` row, unread (``seq`` is the database's)."""
    return {
        "id": message.id,
        "namespace": message.namespace,
        "execution_id": message.execution_id,
        "topic": message.topic,
        "payload": message.payload,
        "idempotency_key": message.idempotency_key,
        "sender_id": message.sender_id,
        "sent_at": message.sent_at_ms,
    }


def event_params(event: EventRow) -> dict[str, Any]:
    """The event upsert's parameters (``e_<column>``)."""
    return {
        "e_execution_id": event.execution_id,
        "e_event_key": event.key,
        "e_value": event.value,
        "e_updated_at": event.updated_at,
    }


def step_params(step: StepRow, now_ms: int) -> dict[str, Any]:
    """The step upsert's parameters (``s_<column>``)."""
    values = (
        step.execution_id,
        step.name,
        step.order,
        step.status.value,
        step.attempts,
        step.output,
        step.error_type,
        step.error_message,
        step.started_at,
        step.completed_at,
        now_ms,
        step.kind,
        step.detail,
    )
    return {f"s_{c}": v for c, v in zip(STEP_COLUMNS, values, strict=True)}


def attempt_params(attempt: StepAttemptRow) -> dict[str, Any]:
    """The step attempt upsert's parameters (``a_<column>``)."""
    values = (
        attempt.execution_id,
        attempt.step_name,
        attempt.lease_token,
        attempt.attempt,
        attempt.status.value,
        attempt.error_type,
        attempt.error_message,
        attempt.started_at,
        attempt.completed_at,
    )
    return {f"a_{c}": v for c, v in zip(ATTEMPT_COLUMNS, values, strict=True)}
