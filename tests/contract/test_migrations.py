"""hydra's Alembic migrations on each SQL backend: they build exactly the declared schema,
render offline, are idempotent and safe to run concurrently."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, event, inspect

from hydra.store.base import NewExecution, Store
from hydra.store.migrations.runner import (
    VERSION_TABLE,
    current_revision,
    head_revision,
    offline_sql,
)
from hydra.store.sql import SQLStore
from hydra.store.sql.schema import metadata

T0 = 1_700_000_000_000


class BackendStoreFactory(Protocol):
    """What the ``sql_store_factory`` fixture (tests/conftest.py) gives."""

    url: str | None

    def __call__(self) -> Store: ...


def _sql_store(factory: BackendStoreFactory) -> SQLStore:
    store = factory()
    assert isinstance(store, SQLStore)
    return store


def _hydra_tables_only(name: str | None, type_: str, parent_names: Any) -> bool:
    # The servers are shared with other tests: compare hydra's declared tables only (a
    # missing one still shows up as "add_table"). The version table is Alembic's own.
    if type_ == "table":
        return name in metadata.tables and name != VERSION_TABLE
    return True


def _schema_diffs(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"include_name": _hydra_tables_only, "compare_type": True}
        )
        return list(compare_metadata(ctx, metadata))


def test_migrations_build_the_declared_schema(sql_store_factory: BackendStoreFactory) -> None:
    store = _sql_store(sql_store_factory)
    diffs = _schema_diffs(store.engine)
    assert diffs == [], "the migrated schema differs from hydra.store.sql.schema:\n" + "\n".join(
        map(repr, diffs)
    )
    assert current_revision(store.engine) == head_revision()
    tables = set(inspect(store.engine).get_table_names())
    assert set(metadata.tables) | {VERSION_TABLE} <= tables


def test_offline_sql_renders_ddl(sql_store_factory: BackendStoreFactory) -> None:
    assert sql_store_factory.url is not None
    sql = offline_sql(sql_store_factory.url)
    assert "CREATE TABLE workflow_executions" in sql, sql[:2000]
    assert "CREATE TABLE workflow_steps" in sql
    assert VERSION_TABLE in sql
    assert head_revision() in sql


def test_migrate_twice_is_a_noop(sql_store_factory: BackendStoreFactory) -> None:
    store = _sql_store(sql_store_factory)
    namespace = f"migrate-{uuid.uuid4().hex}"
    new = NewExecution(
        id=str(uuid.uuid4()),
        namespace=namespace,
        workflow_name="wf",
        input=b"kept",
        max_attempts=1,
        retry_backoff_ms=0,
        timeout_ms=None,
        idempotency_key=None,
        run_at_ms=T0,
        created_at_ms=T0,
    )
    store.create_execution(new)
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        store.migrate()
        store.migrate()
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    ddl = [
        s
        for s in statements
        if s.lstrip().upper().startswith(("CREATE", "ALTER", "DROP", "INSERT", "UPDATE"))
    ]
    assert ddl == [], f"migrate() at head still changed the schema: {ddl}"
    assert current_revision(store.engine) == head_revision()
    assert _schema_diffs(store.engine) == []
    row = store.get_execution(namespace, new.id)
    assert row is not None and row.input == b"kept", "migrate() lost data"


@pytest.mark.parametrize("round_", range(5))
def test_concurrent_migrate_on_a_fresh_sqlite_file(tmp_path: Path, round_: int) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    threads = 2
    barrier = threading.Barrier(threads)

    def migrate() -> None:
        barrier.wait(timeout=30)
        store = SQLStore(url, auto_migrate=True)
        try:
            store.migrate()
        finally:
            store.close()

    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(migrate) for _ in range(threads)]:
            future.result(timeout=120)
    store = SQLStore(url, auto_migrate=False)  # raises SchemaNotReadyError if not at head
    try:
        assert current_revision(store.engine) == head_revision()
        assert _schema_diffs(store.engine) == []
        assert "alembic_version" not in store.table_names(), "used the default version table"
    finally:
        store.close()


def test_claim_index_migration_keeps_rows_and_downgrades(tmp_path: Path) -> None:
    """0001 -> head (0002 swaps the claim's indexes), down to 0001 (the old indexes are
    back) and up again: head's schema is exactly the declared one and claims work."""
    from alembic import command
    from sqlalchemy import create_engine

    from hydra.store.migrations.runner import config, upgrade

    url = f"sqlite:///{tmp_path / 'upgraded.db'}"
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            upgrade(conn, "0001")
        assert current_revision(engine) == "0001"
        old = SQLStore(url, auto_migrate=True)  # brings it to head, as a deploy would
        old.close()
        with engine.begin() as conn:
            command.downgrade(config(conn), "0001")
        assert current_revision(engine) == "0001"
        indexes = {i["name"] for i in inspect(engine).get_indexes("workflow_executions")}
        assert "ix_workflow_executions_claim" in indexes, indexes
        assert "ix_workflow_executions_due" not in indexes, indexes
        store = SQLStore(url, auto_migrate=True)
        try:
            new = NewExecution(
                id=str(uuid.uuid4()),
                namespace="upgraded",
                workflow_name="wf",
                input=b"{}",
                max_attempts=1,
                retry_backoff_ms=0,
                timeout_ms=None,
                idempotency_key=None,
                run_at_ms=T0,
                created_at_ms=T0,
            )
            store.create_execution(new)
            assert current_revision(store.engine) == head_revision()
            assert _schema_diffs(store.engine) == []
            claims = store.claim("upgraded", ["wf"], "w", now_ms=T0, lease_ms=1_000, limit=5)
            assert [c.execution.id for c in claims] == [new.id]
        finally:
            store.close()
    finally:
        engine.dispose()


def test_step_attempts_migration_keeps_older_steps_readable(tmp_path: Path) -> None:
    """0002 -> head adds workflow_step_attempts: a step checkpointed before (no attempt
    records) still reads, with its latest attempt's fields and an empty history; down to
    0002 drops the table, and up again restores exactly the declared schema."""
    from alembic import command
    from sqlalchemy import create_engine

    import hydra
    from hydra.store.migrations.runner import config, upgrade
    from hydra.store.sql.schema import executions, steps

    url = f"sqlite:///{tmp_path / 'older.db'}"
    engine = create_engine(url)
    eid = str(uuid.uuid4())
    try:
        with engine.begin() as conn:
            upgrade(conn, "0002")
            conn.execute(
                executions.insert().values(
                    id=eid,
                    namespace="default",
                    workflow_name="wf",
                    status="failed",
                    input_data=b"null",
                    attempt=1,
                    max_attempts=1,
                    retry_backoff_ms=0,
                    created_at=T0,
                    updated_at=T0 + 9,
                    run_at=T0,
                    lease_token=1,
                )
            )
            conn.execute(
                steps.insert().values(
                    execution_id=eid,
                    step_name="charge",
                    step_order=0,
                    status="failed",
                    attempts=3,
                    error_type="ConnectionError",
                    error_message="down 3",
                    started_at=T0 + 5,
                    completed_at=T0 + 8,
                    updated_at=T0 + 8,
                )
            )
        store = SQLStore(url, auto_migrate=True)  # brings it to head, as a deploy would
        try:
            (step,) = hydra.Engine(store).get_execution(eid).steps
            assert (step.attempts, step.error, step.attempt_history) == (
                3,
                "ConnectionError: down 3",
                [],
            )
        finally:
            store.close()
        with engine.begin() as conn:
            command.downgrade(config(conn), "0002")
        assert "workflow_step_attempts" not in inspect(engine).get_table_names()
        store = SQLStore(url, auto_migrate=True)
        try:
            assert current_revision(store.engine) == head_revision()
            assert _schema_diffs(store.engine) == []
        finally:
            store.close()
    finally:
        engine.dispose()


def test_messages_migration_backfills_step_kinds_and_downgrades(tmp_path: Path) -> None:
    """0003 -> head adds the message and event tables, wait_topic and the checkpoints'
    kind and detail: a sleeping checkpoint written before becomes a "sleep", any other a
    "step", both without detail; down to 0003 drops all of it, and up again restores
    exactly the declared schema."""
    from alembic import command
    from sqlalchemy import create_engine

    from hydra.store.migrations.runner import config, upgrade
    from hydra.store.sql.schema import executions, steps

    url = f"sqlite:///{tmp_path / 'before-messages.db'}"
    engine = create_engine(url)
    eid = str(uuid.uuid4())
    try:
        with engine.begin() as conn:
            upgrade(conn, "0003")
            conn.execute(
                executions.insert().values(
                    id=eid,
                    namespace="default",
                    workflow_name="wf",
                    status="sleeping",
                    input_data=b"null",
                    attempt=1,
                    max_attempts=1,
                    retry_backoff_ms=0,
                    created_at=T0,
                    updated_at=T0 + 9,
                    run_at=T0,
                    wake_at=T0 + 100,
                    sleep_until=T0 + 100,
                    lease_token=1,
                )
            )
            for order, (name, status) in enumerate((("fetch", "completed"), ("nap", "sleeping"))):
                conn.execute(
                    steps.insert().values(
                        execution_id=eid,
                        step_name=name,
                        step_order=order,
                        status=status,
                        attempts=1,
                        output_data=b"1",
                        updated_at=T0 + order,
                    )
                )
        store = SQLStore(url, auto_migrate=True)  # brings it to head, as a deploy would
        try:
            assert _schema_diffs(store.engine) == []
            kinds = [(s.name, s.kind, s.detail) for s in store.list_steps(eid)]
            assert kinds == [("fetch", "step", None), ("nap", "sleep", None)], kinds
            row = store.get_execution("default", eid)
            assert row is not None and row.wait_topic is None
            assert store.list_messages(eid) == [] and store.get_events(eid) == []
        finally:
            store.close()
        with engine.begin() as conn:
            command.downgrade(config(conn), "0003")
        assert current_revision(engine) == "0003"
        tables = set(inspect(engine).get_table_names())
        assert not tables & {"workflow_messages", "workflow_events"}, tables
        step_columns = {c["name"] for c in inspect(engine).get_columns("workflow_steps")}
        assert not step_columns & {"kind", "detail"}, step_columns
        execution_columns = {c["name"] for c in inspect(engine).get_columns("workflow_executions")}
        assert "wait_topic" not in execution_columns
        store = SQLStore(url, auto_migrate=True)
        try:
            assert current_revision(store.engine) == head_revision()
            assert _schema_diffs(store.engine) == []
            assert [s.kind for s in store.list_steps(eid)] == ["step", "sleep"]
        finally:
            store.close()
    finally:
        engine.dispose()


def test_trace_context_migration_keeps_rows_and_downgrades(tmp_path: Path) -> None:
    """Head (0008 adds trace_context) down to 0007 drops the column and keeps the rows;
    up again, they read with no trace context, and the schema is the declared one."""
    from alembic import command
    from sqlalchemy import create_engine, text

    from hydra.store.migrations.runner import config

    url = f"sqlite:///{tmp_path / 'traced.db'}"
    store = SQLStore(url, auto_migrate=True)
    new = NewExecution(
        id=str(uuid.uuid4()),
        namespace="traced",
        workflow_name="wf",
        input=b"{}",
        max_attempts=1,
        retry_backoff_ms=0,
        timeout_ms=None,
        idempotency_key=None,
        run_at_ms=T0,
        created_at_ms=T0,
        trace_context='{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}',
    )
    store.create_execution(new)
    store.close()
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            command.downgrade(config(conn), "0007")
        assert current_revision(engine) == "0007"
        columns = {c["name"] for c in inspect(engine).get_columns("workflow_executions")}
        assert "trace_context" not in columns and "claim_lane" in columns
        with engine.connect() as conn:
            assert conn.execute(text("SELECT id FROM workflow_executions")).scalars().all() == [
                new.id
            ]
    finally:
        engine.dispose()
    store = SQLStore(url, auto_migrate=True)
    try:
        assert current_revision(store.engine) == head_revision()
        assert _schema_diffs(store.engine) == []
        row = store.get_execution("traced", new.id)
        assert row is not None and row.trace_context is None
    finally:
        store.close()
