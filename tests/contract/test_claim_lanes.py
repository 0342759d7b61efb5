"""The claim's reading of a workflow's lanes (``SQLQueues._lane_wakes``), on every SQL
backend.

Where the database has no one-statement lane query (MySQL/MariaDB, SQLite), the store
probes after the lanes it saw at its last claim in one statement and walks the answers as
a chain; a lane it did not see is probed one at a time. These tests change the lanes
between reads (one added before, between and after the others, one emptied, all gone)
and compare every read with what the table holds; and check that a read of unchanged
lanes is one statement whose probes each read ix_workflow_executions_due. Where NULLs sort
first, a lane whose first entry has no wake time (a wait with no deadline) gets a probe
for its earliest wake in that same statement.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import delete, func, select

from hydra.store.sql import SQLStore
from hydra.store.sql.driver import DriverStatement
from hydra.store.sql.schema import executions

from .test_claim_plan import _captured
from .test_migrations import BackendStoreFactory

T0 = 1_700_000_000_000
NAME = "laned"
INDEX = "ix_workflow_executions_due"


def _add(store: SQLStore, ns: str, lane: str, wakes: list[int | None]) -> None:
    rows = [
        {
            "id": str(uuid.uuid4()),
            "namespace": ns,
            "workflow_name": NAME,
            "status": "pending",
            "input_data": b"{}",
            "attempt": 0,
            "max_attempts": 3,
            "retry_backoff_ms": 1_000,
            "created_at": T0 + i,
            "updated_at": T0 + i,
            "run_at": T0,
            "wake_at": wake,
            "lease_token": 0,
            "claim_lane": lane,
        }
        for i, wake in enumerate(wakes)
    ]
    with store.engine.begin() as conn:
        conn.execute(executions.insert(), rows)


def _empty(store: SQLStore, ns: str, lane: str) -> None:
    e = executions.c
    with store.engine.begin() as conn:
        conn.execute(delete(executions).where(e.namespace == ns, e.claim_lane == lane))


def _read(store: SQLStore, ns: str) -> list[tuple[str, str, int | None]]:
    return store._run_hot(lambda tx: store._lane_wakes(tx, ns, [NAME]), write=False)


def _truth(store: SQLStore, ns: str) -> list[tuple[str, str, int | None]]:
    """Each lane with its earliest wake time (None: no row of it has one)."""
    e = executions.c
    query = (
        select(e.claim_lane, func.min(e.wake_at))
        .where(e.namespace == ns, e.workflow_name == NAME, e.claim_lane.is_not(None))
        .group_by(e.claim_lane)
        .order_by(e.claim_lane)
    )
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    return [(NAME, str(lane), None if low is None else int(low)) for lane, low in rows]


def test_lanes_read_right_as_they_change(sql_store_factory: BackendStoreFactory) -> None:
    store = sql_store_factory()
    assert isinstance(store, SQLStore)
    ns = f"lanes-{uuid.uuid4().hex}"
    assert _read(store, ns) == []
    steps: list[tuple[str, str, list[int | None]]] = [
        ("add", "f1:b", [T0 + 5, T0 + 1]),
        ("add", "w1:d", [T0 + 9]),
        ("add", "f1:a", [T0 + 7]),  # before every lane seen
        ("add", "f1:c", [None, T0 + 3]),  # between two seen; a wait with no wake first
        ("add", "w1:n", [None, None]),  # nothing in it has a wake time
        ("add", "w2:e", [T0 + 2]),  # after every lane seen
        ("add", "f1:b", [T0]),  # an earlier wake in a seen lane
        ("empty", "f1:c", []),  # a seen lane gone (its neighbours' probes skip it)
        ("empty", "f1:a", []),  # the first one gone
        ("empty", "w2:e", []),  # the last one gone
        ("add", "f1:c", [T0 + 4]),  # back again
        ("add", "w1:n", [T0 + 8]),  # a wake time behind its NULLs
        ("empty", "w1:n", []),
    ]
    for action, lane, wakes in steps:
        if action == "add":
            _add(store, ns, lane, wakes)
        else:
            _empty(store, ns, lane)
        expected = _truth(store, ns)
        assert _read(store, ns) == expected, (action, lane)
        # Read again, unchanged: the same, in one statement (the lanes just seen).
        with _captured() as seen:
            assert _read(store, ns) == expected, (action, lane)
        assert len(seen) == 1, (action, lane, [str(s) for s, _ in seen])
    for lane in ("f1:b", "f1:c", "w1:d"):
        _empty(store, ns, lane)
    assert _read(store, ns) == []


def test_many_lanes_beyond_one_statement(sql_store_factory: BackendStoreFactory) -> None:
    """More lanes than one lane statement probes after: the rest one at a time, all found."""
    store = sql_store_factory()
    assert isinstance(store, SQLStore)
    ns = f"lanes-{uuid.uuid4().hex}"
    for i in range(40):
        _add(store, ns, f"f{i:02d}:q", [T0 + i])
    expected = _truth(store, ns)
    assert len(expected) == 40
    assert _read(store, ns) == expected
    assert _read(store, ns) == expected


def test_unchanged_lanes_are_one_statement_of_index_probes(
    sql_store_factory: BackendStoreFactory,
) -> None:
    store = sql_store_factory()
    assert isinstance(store, SQLStore)
    ns = f"lanes-{uuid.uuid4().hex}"
    for lane in ("f1:a", "w1:a", "w5:b", "r"):
        _add(store, ns, lane, [T0, T0 + 1])
    _add(store, ns, "w1:a", [None])  # a wait with no deadline: its lane's first entry
    _read(store, ns)
    with _captured() as seen:
        assert len(_read(store, ns)) == 4
    name = store.engine.dialect.name
    if name == "postgresql":
        # One statement for every name's lanes (Dialect.lanes_query).
        assert len(seen) == 1 and "l_names" in seen[0][1]
        return
    assert len(seen) == 1, [str(s) for s, _ in seen]
    stmt, params = seen[0]
    # A probe after each lane and from the start, and one for the earliest wake of the
    # lane whose first entry has none.
    assert sorted(k for k in params if k.startswith("l_after_")) == [
        f"l_after_{i}" for i in range(5)
    ]
    assert params["l_lane_0"] == "w1:a"
    assert _plan_probes_the_index(store, stmt, params) == 6


def _plan_probes_the_index(store: SQLStore, stmt: Any, params: dict[str, Any]) -> int:
    """How many reads of ix_workflow_executions_due the statement's plan has; fails if any
    part reads the table otherwise or sorts."""
    compiled = DriverStatement(stmt, store.engine)
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        if store.engine.dialect.name == "sqlite":
            cur.execute("EXPLAIN QUERY PLAN " + compiled.sql, compiled.bind(params))
            plan = [str(r[-1]) for r in cur.fetchall()]
            assert not any("TEMP B-TREE" in line for line in plan), plan
            reads = [line for line in plan if "workflow_executions" in line]
            assert all(INDEX in line for line in reads), plan
            return len(reads)
        cur.execute("EXPLAIN " + compiled.sql, compiled.bind(params))
        cols = [d[0] for d in cur.description]
        rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
        cur.close()
        raw.rollback()
    finally:
        raw.close()
    table_reads = [r for r in rows if r["table"] == "workflow_executions"]
    for r in table_reads:
        assert r["key"] == INDEX, json.dumps(rows, default=str)
        assert "filesort" not in (r["Extra"] or ""), json.dumps(rows, default=str)
    return len(table_reads)
