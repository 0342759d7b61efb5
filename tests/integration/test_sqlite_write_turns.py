"""SQLite, one process: every writing transaction takes the process's write turn, those on
SQLAlchemy Core (a purge batch, a registration) as well as the hot path's (a claim).

Why it matters: a claim that reached SQLite while a purge batch held the database would
sleep in SQLite's busy handler (1, 2, 5, 10, 15, 20, 25 ms... per try) and wake up to
20 ms after the batch ended, over 50 ms for a batch a little over 33 ms. Waiting for its
turn on a lock, it is handed the database as the batch commits.
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

from hydra.store.sql import SQLStore
from hydra.store.sql.schema import executions

T0 = 1_700_000_000_000


def _due(store: SQLStore, ns: str) -> str:
    eid = str(uuid.uuid4())
    row = {
        "id": eid,
        "namespace": ns,
        "workflow_name": "wf",
        "status": "pending",
        "input_data": b"{}",
        "attempt": 0,
        "max_attempts": 3,
        "retry_backoff_ms": 1_000,
        "created_at": T0,
        "updated_at": T0,
        "run_at": T0,
        "wake_at": T0,
        "lease_token": 0,
        "claim_lane": "f12147483648:default",
    }
    with store.engine.begin() as conn:
        conn.execute(executions.insert(), [row])
    return eid


def test_a_claim_waits_for_its_turn_behind_a_core_write(tmp_path: Path) -> None:
    store = SQLStore(f"sqlite:///{tmp_path / 'turns.db'}", auto_migrate=True)
    try:
        driver = store._driver
        assert driver is not None
        eid = _due(store, "ns")
        inside = threading.Event()
        release = threading.Event()
        order: list[str] = []

        def core_write(conn: Any) -> None:
            inside.set()
            release.wait(10)
            order.append("core write ends")

        writer = threading.Thread(target=lambda: store._run(core_write, write=True))
        writer.start()
        assert inside.wait(10)
        # The Core write holds the turn: another thread cannot take it.
        taken = threading.Event()

        def try_turn() -> None:
            lock: Any = driver.write_turn()
            if lock.acquire(blocking=False):
                lock.release()
                taken.set()

        probe = threading.Thread(target=try_turn)
        probe.start()
        probe.join()
        assert not taken.is_set(), "a Core write did not take the process's write turn"

        claimed: list[str] = []

        def claim() -> None:
            got = store.claim("ns", ["wf"], "w1", now_ms=T0 + 1, lease_ms=60_000, limit=1)
            order.append("claim done")
            claimed.extend(c.execution.id for c in got)

        claimer = threading.Thread(target=claim)
        claimer.start()
        claimer.join(0.2)
        assert claimer.is_alive(), "the claim wrote while the Core write held the database"
        release.set()
        writer.join(10)
        claimer.join(10)
        assert order == ["core write ends", "claim done"]
        assert claimed == [eid]
    finally:
        store.close()
