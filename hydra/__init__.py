"""hydra: durable workflows for Python.

Write workflows as plain functions made of named steps; hydra stores every execution and
every step result, so work survives crashes, restarts and deploys. See the README.
"""

from hydra.children import ChildHandle
from hydra.cron import CronJob
from hydra.engine import Engine
from hydra.errors import (
    ChildFailedError,
    DatabaseUnavailableError,
    DuplicateStepError,
    ExecutionFinishedError,
    ExecutionNotFoundError,
    HydraError,
    InvalidNameError,
    LeaseLostError,
    NonDeterminismError,
    NonRetryableError,
    PayloadError,
    SchemaNotReadyError,
    StepFailedError,
    StepTimeoutError,
    WaitTimeoutError,
    WorkflowNotFoundError,
    WorkflowTimeoutError,
)
from hydra.events import Observer
from hydra.marshal import JSONMarshaller, Marshaller
from hydra.metrics import Metrics
from hydra.parallel import gather
from hydra.queues import Queue, RateLimit
from hydra.records import Execution, Message, StepAttempt, StepRecord
from hydra.retention import Retention
from hydra.retry import RetryPolicy
from hydra.scheduler import CronContext
from hydra.status import Status, StepStatus
from hydra.steps import (
    call_child,
    patched,
    receive,
    send,
    set_event,
    sleep,
    sleep_until,
    start_child,
    step,
    step_void,
    wait_child,
)
from hydra.store.sql import SQLStore
from hydra.worker import Worker, register_workflow
from hydra.workflow import AsyncWorkflowContext, Workflow, WorkflowContext, workflow

__version__ = "0.1.0"

__all__ = [
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
