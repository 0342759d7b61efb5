"""``hydra.__all__`` is the public surface (docs/api names are fixed): pinned here."""

from __future__ import annotations

import hydra

PUBLIC = [
    "AsyncWorkflowContext",
    "ChildFailedError",
    "ChildHandle",
    "CronContext",
    "CronJob",
    "DatabaseUnavailableError",
    "DuplicateStepError",
    "Engine",
    "Execution",
    "ExecutionFinishedError",
    "ExecutionNotFoundError",
    "HydraError",
    "InvalidNameError",
    "JSONMarshaller",
    "LeaseLostError",
    "Marshaller",
    "Message",
    "Metrics",
    "NonDeterminismError",
    "NonRetryableError",
    "Observer",
    "PayloadError",
    "Queue",
    "RateLimit",
    "Retention",
    "RetryPolicy",
    "SQLStore",
    "SchemaNotReadyError",
    "Status",
    "StepAttempt",
    "StepFailedError",
    "StepRecord",
    "StepStatus",
    "StepTimeoutError",
    "WaitTimeoutError",
    "Worker",
    "Workflow",
    "WorkflowContext",
    "WorkflowNotFoundError",
    "WorkflowTimeoutError",
    "call_child",
    "gather",
    "patched",
    "receive",
    "register_workflow",
    "send",
    "set_event",
    "sleep",
    "sleep_until",
    "start_child",
    "step",
    "step_void",
    "wait_child",
    "workflow",
]


def test_all_is_pinned() -> None:
    assert hydra.__all__ == PUBLIC


def test_every_public_name_resolves() -> None:
    for name in hydra.__all__:
        assert getattr(hydra, name) is not None, name
