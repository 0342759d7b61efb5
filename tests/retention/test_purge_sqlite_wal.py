"""SQLite: a purge checkpoints its own deletions between batches, so that no worker's
commit is the one that pushes the WAL past ``wal_autocheckpoint`` and pays for copying
the purge's pages into the database file (docs/benchmarks.md: up to 79 ms for a claim).

Seen from outside: the WAL file never grows past the pages of a few hundred purged rows
(``settle_after_rows``). Without the checkpoints it grows to ``wal_autocheckpoint`` pages
(1,000, 4 MB) before SQLite checkpoints it in some committing connection.
"""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

from hydra.status import Status
from hydra.store.sql import SQLStore
from hydra.store.sql.schema import executions

T0 = 1_700_000_000_000
PAGE = 4096
AUTOCHECKPOINT_PAGES = 1000


def test_a_purge_keeps_the_wal_small(tmp_path: Path) -> None:
    path = tmp_path / "purge.db"
    store = SQLStore(f"sqlite:///{path}", auto_migrate=True)
    try:
        rows = [
            {
                "id": str(uuid.uuid4()),
                "namespace": "ns",
                "workflow_name": "wf",
                "status": "completed",
                "input_data": b"{}" * 50,
                "attempt": 1,
                "max_attempts": 3,
                "retry_backoff_ms": 1_000,
                "created_at": T0 + i,
                "updated_at": T0 + i,
                "run_at": T0 + i,
                "lease_token": 1,
                "completed_at": T0 + i,
            }
            for i in range(3_000)
        ]
        with store.engine.begin() as conn:
            conn.execute(executions.insert(), rows)
        wal = Path(f"{path}-wal")
        with sqlite3.connect(path) as raw:
            raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        assert wal.stat().st_size == 0
        purged = 0
        while True:
            got = store.purge_executions(
                "ns", ended_before_ms=T0 + 10**9, statuses=[Status.COMPLETED], limit=200
            )
            purged += len(got)
            if len(got) < 200:
                break
        assert purged == 3_000
        # 15 batches of 200 rows wrote several times this (measured: 4.3 MB without the
        # checkpoints, 1.1 MB with one every settle_after_rows rows).
        assert wal.stat().st_size < AUTOCHECKPOINT_PAGES * PAGE / 2, wal.stat().st_size
    finally:
        store.close()
