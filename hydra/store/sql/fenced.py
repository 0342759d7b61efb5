"""Fenced writes' shared pieces: the lease extension every checkpoint starts with, the
row lock a send takes on its receiver, and the words of a
lost lease."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra.store.base import Lease
from hydra.store.sql import statements
from hydra.store.sql.driver import Tx


def extend_lease(tx: Tx, lease: Lease, now_ms: int, lease_ms: int) -> bool:
    """The fenced lease extension: False if the lease is no longer this one."""
    params = {
        "x_id": lease.execution_id,
        "x_token": lease.token,
        "x_expires": now_ms + lease_ms,
        "x_now": now_ms,
    }
    return tx.rowcount(statements.EXTEND, params) == 1


def lock_execution(tx: Tx, execution_id: str) -> Sequence[Any] | None:
    """Lock an execution's row (see ``statements.LOCK_EXECUTION``) and read what a send
    checks: its namespace, status and the topic it waits in; None if there is none."""
    rows = tx.rows(statements.LOCK_EXECUTION, {"l_id": execution_id})
    return rows[0] if rows else None


def lost_lease(lease: Lease) -> str:
    return (
        f"worker {lease.worker_id} lost the lease on execution {lease.execution_id} "
        f"(token {lease.token}): it was taken over or cancelled"
    )
