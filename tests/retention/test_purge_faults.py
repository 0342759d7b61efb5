"""A purge cut short leaves no orphan; a row another transaction holds (a retry in
flight) is skipped, not waited for nor deleted (issue 15, retention)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

import hydra
from hydra.store.sql import SQLStore
from hydra.store.sql.schema import executions
from hydra.testing import FakeClock, TestEnvironment
from tests.conftest import StoreURLs

from .test_purge import noted

DAY = timedelta(days=1)


def finished_env(store: SQLStore, count: int) -> tuple[TestEnvironment, list[str]]:
    env = TestEnvironment(
        store=store,
        namespace=f"pf-{uuid.uuid4().hex[:12]}",
        clock=FakeClock(datetime(2030, 1, 1, tzinfo=UTC)),
    )
    env.register(noted)
    ids = [env.start(noted, False) for _ in range(count)]
    env.run_until_all_complete()
    env.advance(2 * DAY)
    return env, ids


def test_a_purge_cut_short_deletes_nothing_of_its_batch(
    sql_store_factory: Callable[[], SQLStore],
) -> None:
    store = sql_store_factory()
    env, ids = finished_env(store, 3)

    # The batch's last statement, the DELETE of the executions' rows, never runs: the
    # statements before it (their checkpoints, messages, events...) have.
    def dies_before_the_rows(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().startswith("DELETE FROM workflow_executions"):
            raise RuntimeError("the process died here")

    sa.event.listen(store.engine, "before_cursor_execute", dies_before_the_rows)
    with pytest.raises(RuntimeError):
        env.engine.purge(older_than=DAY)
    sa.event.remove(store.engine, "before_cursor_execute", dies_before_the_rows)
    # The checkpoints deleted before the failure came back with the rollback: no execution
    # lost its steps while its row stayed.
    for eid in ids:
        assert [s.name for s in env.engine.get_execution(eid).steps] == ["event-1", "work"]
    assert env.engine.purge(older_than=DAY) == 3


@pytest.mark.parametrize("backend", ["postgres", "mysql"])
def test_a_row_held_by_another_transaction_is_skipped(backend: str, store_urls: StoreURLs) -> None:
    store = SQLStore(store_urls.url(backend), auto_migrate=True)
    try:
        env, ids = finished_env(store, 2)
        held, free = ids
        with store.engine.connect() as other:  # a retry of `held`, its row locked
            other.execute(
                sa.select(executions.c.id).where(executions.c.id == held).with_for_update()
            ).all()
            # In a thread: a purge that waited for the lock instead of skipping the row
            # fails the test (after 10 s) instead of hanging it.
            purged: list[int] = []
            purging = threading.Thread(
                target=lambda: purged.append(env.engine.purge(older_than=DAY))
            )
            purging.start()
            purging.join(10)
            blocked = purging.is_alive()
            other.rollback()
            purging.join(30)
            assert not blocked, "the purge waited for a row another transaction holds"
            assert purged == [1]  # skipped, not deleted
        with pytest.raises(hydra.ExecutionNotFoundError):
            env.engine.get_execution(free)
        assert env.engine.get_execution(held).status == "completed"
        assert env.engine.purge(older_than=DAY) == 1
    finally:
        store.close()


def test_a_purge_batch_s_ids_are_one_constant_on_postgresql(store_urls: StoreURLs) -> None:
    """PostgreSQL: a batch's ids are one array parameter that the server reads once, as a
    constant (the plan shows ``'{...}'::text[]``). Cast from text first, the array was
    parsed again for every row a scan read: 6 s for a batch of 1,000 ids against a table
    of 10,000 rows."""
    store = SQLStore(store_urls.url("postgres"), auto_migrate=True)
    try:
        delete_steps = store._purge_deletes[1]
        params = {"p_ids": store._dialect.ids_param(["a", 'b"c', "d\\e"])}
        with store.engine.connect() as conn:
            compiled = delete_steps.compile(dialect=store.engine.dialect)
            plan = "\n".join(
                r[0]
                for r in conn.exec_driver_sql(
                    "EXPLAIN (COSTS OFF) " + str(compiled), {**compiled.params, **params}
                )
            )
            assert "workflow_steps" in plan, plan
            assert """= ANY ('{a,"b\\"c","d\\\\e"}'::text[])""" in plan, plan
    finally:
        store.close()


def test_a_purge_batch_finds_children_by_index_on_mysql(store_urls: StoreURLs) -> None:
    """MySQL/MariaDB: a batch looks for the children of its executions (hundreds of ids)
    through ix_workflow_executions_parent. Nearly every parent_id is NULL; past
    eq_range_index_dive_limit (200 values) the optimizer took the index's statistics to
    mean each value matches a great many rows and scanned the table (3 s a batch on 1.2
    million rows)."""
    store = SQLStore(store_urls.url("mysql"), auto_migrate=True)
    try:
        ns = f"pf-{uuid.uuid4().hex[:12]}"
        rows = [
            {
                "id": f"{ns}-{i}",
                "namespace": ns,
                "workflow_name": "wf",
                "status": "completed",
                "input_data": b"{}",
                "attempt": 1,
                "max_attempts": 3,
                "retry_backoff_ms": 1_000,
                "created_at": i,
                "updated_at": i,
                "run_at": i,
                "lease_token": 1,
                "completed_at": i,
            }
            for i in range(5_000)
        ]
        with store.engine.begin() as conn:
            conn.execute(executions.insert(), rows)
            conn.exec_driver_sql("ANALYZE TABLE workflow_executions").all()
        ids = [f"{ns}-{i}" for i in range(300)]
        sql = store._children_status.params(p_ids=ids).compile(
            dialect=store.engine.dialect, compile_kwargs={"literal_binds": True}
        )
        with store.engine.connect() as conn:
            plan = conn.exec_driver_sql(f"EXPLAIN {sql}").mappings().all()
        assert [p["key"] for p in plan] == ["ix_workflow_executions_parent"], plan
    finally:
        with store.engine.begin() as conn:
            conn.execute(sa.delete(executions).where(executions.c.namespace == ns))
        store.close()
