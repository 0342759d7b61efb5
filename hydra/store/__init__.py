"""Stores: where executions and step checkpoints live."""

from hydra.store.base import (
    Claim,
    CronStore,
    ExecutionRow,
    ExecutionStore,
    Lease,
    LeaseStore,
    NewExecution,
    StepRow,
    StepStore,
    Store,
    WakeListener,
)

__all__ = [
    "Claim",
    "CronStore",
    "ExecutionRow",
    "ExecutionStore",
    "Lease",
    "LeaseStore",
    "NewExecution",
    "StepRow",
    "StepStore",
    "Store",
    "WakeListener",
]
