"""SQLite: a purge's pages reach the database file through its own checkpoints, between
batches and outside any write transaction, never as part of a commit.

SQLite checkpoints the WAL in whichever commit takes it past ``wal_autocheckpoint``
(1,000 pages), with two fsyncs, while that connection still holds the write lock: during
a purge, 30-90 ms in a purge batch's commit or in a worker's (docs/benchmarks.md). So a
batch commits with auto-checkpoint off on its connection (``bulk_delete_session``), and
``settle_purge`` checkpoints (PASSIVE) every ``settle_after_rows`` rows and after the last
batch.
"""

from __future__ import annotations

import hashlib
import sqlite3
import uuid
from datetime import timedelta
from pathlib import Path

import hydra
from hydra.status import Status
from hydra.store.sql import SQLStore
from hydra.store.sql.schema import executions

T0 = 1_700_000_000_000
PAGE = 4096
AUTOCHECKPOINT_PAGES = 1000


def _store_with_finished(path: Path, count: int, payload: int = 100) -> SQLStore:
    store = SQLStore(f"sqlite:///{path}", auto_migrate=True)
    rows = [
        {
            "id": str(uuid.uuid4()),
            "namespace": "ns",
            "workflow_name": "wf",
            "status": "completed",
            "input_data": b"x" * payload,
            "attempt": 1,
            "max_attempts": 3,
            "retry_backoff_ms": 1_000,
            "created_at": T0 + i,
            "updated_at": T0 + i,
            "run_at": T0 + i,
            "lease_token": 1,
            "completed_at": T0 + i,
        }
        for i in range(count)
    ]
    with store.engine.begin() as conn:
        conn.execute(executions.insert(), rows)
    # Everything in the database file, the WAL empty.
    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    assert Path(f"{path}-wal").stat().st_size == 0
    return store


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_purge_keeps_the_wal_small(tmp_path: Path) -> None:
    path = tmp_path / "purge.db"
    store = _store_with_finished(path, 3_000)
    try:
        purged = 0
        while True:
            got = store.purge_executions(
                "ns", ended_before_ms=T0 + 10**9, statuses=[Status.COMPLETED], limit=200
            )
            purged += len(got)
            if len(got) < 200:
                store.settle_purge(finished=True)
                break
            store.settle_purge()
        assert purged == 3_000
        # 15 batches of 200 rows wrote several times this (measured: 4.3 MB without the
        # checkpoints, 0.37 MB with one every settle_after_rows rows).
        wal = Path(f"{path}-wal")
        assert wal.stat().st_size < AUTOCHECKPOINT_PAGES * PAGE / 2, wal.stat().st_size
    finally:
        store.close()


def test_a_batch_commits_without_checkpointing_and_the_settle_does_it(tmp_path: Path) -> None:
    path = tmp_path / "batch.db"
    # Rows of 2 KB: one batch deleting them all writes far more than 1,000 pages of WAL,
    # which an auto-checkpointing commit would copy into the database file.
    store = _store_with_finished(path, 4_000, payload=2_000)
    try:
        before = _digest(path)
        got = store.purge_executions(
            "ns", ended_before_ms=T0 + 10**9, statuses=[Status.COMPLETED], limit=4_000
        )
        assert len(got) == 4_000
        assert Path(f"{path}-wal").stat().st_size > AUTOCHECKPOINT_PAGES * PAGE
        assert _digest(path) == before, "the batch's commit checkpointed the WAL"
        # The connection went back to the pool with SQLite's auto-checkpoint as it was.
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
        store.settle_purge(finished=True)
        assert _digest(path) != before, "the settle did not checkpoint the purge's pages"
    finally:
        store.close()


def test_engine_purge_settles_after_its_last_batch(tmp_path: Path) -> None:
    path = tmp_path / "engine.db"
    store = _store_with_finished(path, 30)  # fewer than settle_after_rows
    try:
        before = _digest(path)
        engine = hydra.Engine(store, namespace="ns")
        assert engine.purge(older_than=timedelta(days=1)) == 30
        assert _digest(path) != before, "the purge left its last pages to a worker's commit"
    finally:
        store.close()
