"""A forked child does not use, or close, its parent's hot-path connections.

Pre-forking servers (gunicorn, Celery prefork) fork a process that already has a store.
The driver path keeps its own connections (``hydra/store/sql/driver.py``); a child that
inherited them would share the parent's sockets, and closing them in the child (its
``store.close()``, or exiting) would end the parent's database sessions. After ``fork()``
the child's pools start empty.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
import uuid
from typing import Any

import pytest

from hydra.status import Status, StepStatus
from hydra.store.base import NewExecution, StepRow
from hydra.store.sql import SQLStore

NS = "fork"


def _new(now: int) -> NewExecution:
    return NewExecution(
        id=uuid.uuid4().hex,
        namespace=NS,
        workflow_name="wf",
        input=b"in",
        max_attempts=1,
        retry_backoff_ms=1_000,
        timeout_ms=None,
        idempotency_key=None,
        run_at_ms=now,
        created_at_ms=now,
    )


def _child(store: SQLStore, execution_id: str, held: list[int]) -> None:
    # The child's pool is empty: it opens its own connection, then closes everything.
    held.append(store._driver.held if store._driver is not None else -1)
    row = store.get_execution(NS, execution_id)
    assert row is not None and row.status is Status.RUNNING
    store.close()


def test_a_forked_child_leaves_the_parents_connections_alone(
    sql_store_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    if sql_store_factory.backend != "postgres":
        pytest.skip("the driver path's connections are server sessions on PostgreSQL only")
    store: SQLStore = sql_store_factory()
    assert store._driver is not None
    now = int(time.time() * 1000)
    eid, _ = store.create_execution(_new(now))
    [claim] = store.claim(NS, ["wf"], "parent", now_ms=now, lease_ms=60_000, limit=1)
    assert store._driver.held >= 1  # the parent holds driver connections now

    ctx = multiprocessing.get_context("fork")
    with ctx.Manager() as manager:
        held = manager.list()
        child = ctx.Process(target=_child, args=(store, eid, held))
        child.start()
        child.join(30)
        assert child.exitcode == 0
        assert list(held) == [0]

    caplog.set_level(logging.WARNING, logger="hydra.store")
    step = StepRow(eid, "s1", 0, StepStatus.COMPLETED, 1, b"out", started_at=now, completed_at=now)
    store.save_step(claim.lease, step, now_ms=now, lease_ms=60_000)
    store.finish(claim.lease, status=Status.COMPLETED, now_ms=now, output=b"done")
    # The parent's driver connections survived the child's close(): no call had to retry.
    retried = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert retried == []
    row = store.get_execution(NS, eid)
    assert row is not None and row.status is Status.COMPLETED
