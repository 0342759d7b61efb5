"""Stores: where executions and step checkpoints live."""

from hydra.store.base import Claim, ExecutionRow, Lease, NewExecution, StepRow, Store, WakeListener

__all__ = ["Claim", "ExecutionRow", "Lease", "NewExecution", "StepRow", "Store", "WakeListener"]
