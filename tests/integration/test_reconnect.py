"""A store call rides out pooled connections that the server dropped (as after a restart).

The engines ``SQLStore`` creates have no ``pool_pre_ping``: a checked-out connection is
not tested first, so the first statement on a dead one fails, and ``SQLStore._run`` must
retry the whole transaction on a fresh connection. Here every connection in the store's
pool is killed on the server (``pg_terminate_backend`` / ``KILL``: only this store's
connections, found by their backend ids) before each kind of call, hot-path writes
included.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from hydra.status import Status, StepStatus
from hydra.store.base import NewExecution, StepRow
from hydra.store.sql import SQLStore

NS = "reconnect"
POOLED = 3


def _kill_pool(store: SQLStore, url: str) -> list[int]:
    """Open ``POOLED`` connections through the store's pool, then kill them server-side."""
    postgres = store.engine.dialect.name == "postgresql"
    conns = [store.engine.connect() for _ in range(POOLED)]
    query = "SELECT pg_backend_pid()" if postgres else "SELECT CONNECTION_ID()"
    ids = []
    for c in conns:
        # A connection killed in an earlier round that no call has used since (the hot
        # path runs on the driver pool's connections) fails here and is discarded.
        with contextlib.suppress(DBAPIError):
            ids.append(int(c.exec_driver_sql(query).scalar_one()))
    for c in conns:
        c.close()  # back to the pool, still open on our side
    # The hot path's own connections (hydra/store/sql/driver.py), idle between calls.
    driver = store._driver
    if driver is not None:
        ids += [fairy.driver_connection.info.backend_pid for fairy in driver._idle]
    assert ids
    admin = create_engine(url, poolclass=NullPool)
    try:
        with admin.connect() as conn:
            for i in ids:
                if postgres:
                    conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": i})
                else:
                    conn.exec_driver_sql(f"KILL {i}")
            # Termination is asynchronous: wait until the server no longer lists them.
            listing = (
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:ids)"
                if postgres
                else "SELECT count(*) FROM information_schema.processlist WHERE id IN :ids"
            )
            params: dict[str, Any] = {"ids": ids if postgres else tuple(ids)}
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                listed = conn.execute(text(listing), params).scalar_one()
                # PostgreSQL reads pg_stat_activity once per transaction: end it, or every
                # poll sees the backends as they were at the first one.
                conn.commit()
                if not listed:
                    break
                time.sleep(0.02)
    finally:
        admin.dispose()
    return ids


def test_calls_retry_on_connections_killed_by_the_server(
    sql_store_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    if sql_store_factory.backend == "sqlite":
        pytest.skip("SQLite has no server to drop connections")
    store: SQLStore = sql_store_factory()
    assert not store.engine.pool._pre_ping  # what this test guards
    url = sql_store_factory.url
    now = int(time.time() * 1000)
    eid = uuid.uuid4().hex
    new = NewExecution(
        id=eid,
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
    caplog.set_level(logging.WARNING, logger="hydra.store")

    _kill_pool(store, url)
    assert store.create_execution(new) == (eid, True)
    _kill_pool(store, url)
    [claim] = store.claim(NS, ["wf"], "w1", now_ms=now, lease_ms=60_000, limit=5)
    lease = claim.lease
    _kill_pool(store, url)
    step = StepRow(eid, "s1", 0, StepStatus.COMPLETED, 1, b"out", started_at=now, completed_at=now)
    store.save_step(lease, step, now_ms=now, lease_ms=60_000)
    _kill_pool(store, url)
    assert store.heartbeat([lease], now_ms=now, lease_ms=60_000) == []
    _kill_pool(store, url)
    store.finish(lease, status=Status.COMPLETED, now_ms=now, output=b"done")
    _kill_pool(store, url)
    row = store.get_execution(NS, eid)
    assert row is not None and row.status is Status.COMPLETED and row.output == b"done"
    assert [s.output for s in store.list_steps(eid)] == [b"out"]

    retried = [r for r in caplog.records if "retrying database call" in r.getMessage()]
    # Each call met a dead connection and was retried (not merely lucky with a fresh one).
    assert len(retried) >= 6, [r.getMessage() for r in retried]
