"""The claim's query plan on each SQL backend: it walks the (namespace, workflow_name,
claim_lane, wake_at, ...) index of the names it claims, so its cost does not grow with rows of other
workflows or finished rows (issue 9: 100,000 due rows of an unregistered workflow made
every claim read them all).

The statement checked is the one ``SQLStore.claim`` really runs, captured on its way to
the database, then EXPLAINed on a table holding due rows of another workflow and finished
rows of the claimed one.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from hydra.store.sql import SQLStore
from hydra.store.sql.driver import CoreTx, DriverStatement, DriverTx
from hydra.store.sql.schema import executions

from .test_migrations import BackendStoreFactory

T0 = 1_700_000_000_000
INDEX = "ix_workflow_executions_due"


def _rows(ns: str, workflow: str, count: int, *, due: bool) -> list[dict[str, Any]]:
    return [
        {
            "id": str(uuid.uuid4()),
            "namespace": ns,
            "workflow_name": workflow,
            "status": "pending" if due else "completed",
            "input_data": b"{}",
            "attempt": 0 if due else 1,
            "max_attempts": 3,
            "retry_backoff_ms": 1_000,
            "created_at": T0 + i,
            "updated_at": T0 + i,
            "run_at": T0 + i,
            "wake_at": T0 + i if due else None,
            "lease_token": 0 if due else 1,
            "claim_lane": "f12147483648:default" if due else None,
        }
        for i in range(count)
    ]


def _fill(store: SQLStore, ns: str) -> None:
    """Due rows of a workflow nobody claims here, finished and due rows of 'mine'."""
    rows = _rows(ns, "unregistered", 1_500, due=True) + _rows(ns, "mine", 1_500, due=False)
    rows += _rows(ns, "mine", 5, due=True) + _rows(ns, "also-mine", 5, due=True)
    with store.engine.begin() as conn:
        conn.execute(executions.insert(), rows)
    with store.engine.connect() as conn:
        name = store.engine.dialect.name
        if name == "postgresql":
            conn.exec_driver_sql("ANALYZE workflow_executions")
        elif name == "sqlite":
            conn.exec_driver_sql("ANALYZE")
        else:
            conn.exec_driver_sql("ANALYZE TABLE workflow_executions").all()
        conn.commit()


@contextmanager
def _captured() -> Iterator[list[tuple[Any, dict[str, Any]]]]:
    """Record every (statement, params) the store's hot path reads rows with."""
    seen: list[tuple[Any, dict[str, Any]]] = []
    originals = {cls: cls.rows for cls in (DriverTx, CoreTx)}

    def recording(original: Any) -> Any:
        def rows(self: Any, stmt: Any, params: dict[str, Any]) -> Any:
            seen.append((stmt, dict(params)))
            return original(self, stmt, params)

        return rows

    try:
        for cls, original in originals.items():
            cls.rows = recording(original)  # type: ignore[method-assign]
        yield seen
    finally:
        for cls, original in originals.items():
            cls.rows = original  # type: ignore[method-assign]


def _claim_statements(store: SQLStore, ns: str, names: list[str]) -> list[tuple[Any, Any]]:
    with _captured() as seen:
        claims = store.claim(ns, names, "plan-probe", now_ms=T0 + 10_000, lease_ms=1, limit=1)
    assert len(claims) == 1, f"the probe claim took {len(claims)} executions, expected 1"
    # The picks (the lane reads: tests/contract/test_claim_lanes.py).
    picks = [
        (s, p)
        for s, p in seen
        if "wake_at" in str(s) and "ORDER BY" in str(s) and not any(k.startswith("l_") for k in p)
    ]
    assert picks, "no claim statement was captured"
    return picks


def _explain(store: SQLStore, stmt: Any, params: dict[str, Any]) -> str:
    compiled = DriverStatement(stmt, store.engine)
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        name = store.engine.dialect.name
        if name == "postgresql":
            # Whatever the table's size, the index must be the way in (not only cheaper).
            cur.execute("SET enable_seqscan = off")
            cur.execute("EXPLAIN (FORMAT JSON) " + compiled.sql, compiled.bind(params))
            plan = json.dumps(cur.fetchall()[0][0], indent=1)
            cur.execute("RESET enable_seqscan")
        elif name == "sqlite":
            cur.execute("EXPLAIN QUERY PLAN " + compiled.sql, compiled.bind(params))
            plan = "\n".join(str(r[-1]) for r in cur.fetchall())
        else:
            cur.execute("EXPLAIN " + compiled.sql, compiled.bind(params))
            cols = [d[0] for d in cur.description]
            plan = "\n".join(json.dumps(dict(zip(cols, r, strict=True))) for r in cur.fetchall())
        cur.close()
        raw.rollback()
    finally:
        raw.close()
    return plan


def _assert_walks_index(store: SQLStore, plan: str) -> None:
    name = store.engine.dialect.name
    assert INDEX in plan, f"the claim does not use {INDEX}:\n{plan}"
    if name == "postgresql":
        every = list(_pg_nodes(json.loads(plan)[0]["Plan"]))
        nodes = [n["Node Type"] for n in every]
        # The UPDATE finds the picked rows by primary key; the pick is the claim's scan.
        picks = [n for n in every if "Index Name" in n and not n["Index Name"].endswith("pkey")]
        assert picks and all(n["Index Name"] == INDEX for n in picks), plan
        assert all("workflow_name" in n.get("Index Cond", "") for n in picks), (
            f"workflow_name is not an index condition:\n{plan}"
        )
        # Only the merge of several names' first rows sorts (at most c_limit per name).
        assert "Seq Scan" not in nodes and "Bitmap Heap Scan" not in nodes, plan
    elif name == "sqlite":
        assert "TEMP B-TREE" not in plan, f"the claim sorts its rows:\n{plan}"
        assert "workflow_name=?" in plan, f"workflow_name is not an index condition:\n{plan}"
    else:
        for line in plan.splitlines():
            row = json.loads(line)
            assert row["key"] == INDEX, f"the claim reads another index:\n{plan}"
            assert "filesort" not in (row["Extra"] or ""), f"the claim sorts its rows:\n{plan}"
            # A range on (namespace, workflow_name, wake_at): 2 x (255 x 4 + 2) + 8 + 1
            # bytes of key (the old (namespace, wake_at) index: 1031), and only this
            # workflow's due rows estimated (not the other workflow's 1,500).
            assert int(row["key_len"]) >= 2053, f"the range is not on the name:\n{plan}"
            assert int(row["rows"]) < 100, f"the claim reads other rows:\n{plan}"


def _pg_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _pg_nodes(child)


@pytest.mark.parametrize("names", [["mine"], ["mine", "also-mine"]], ids=["one", "two"])
def test_claim_plan_walks_the_claimed_workflows_index(
    sql_store_factory: BackendStoreFactory, names: list[str]
) -> None:
    store = sql_store_factory()
    assert isinstance(store, SQLStore)
    ns = f"plan-{uuid.uuid4().hex}"
    _fill(store, ns)
    for stmt, params in _claim_statements(store, ns, names):
        _assert_walks_index(store, _explain(store, stmt, params))
