"""DBOS's side of ``compare.py``: the same three workloads, written as DBOS workflows.

Imported only by the benchmark's DBOS child processes (DBOS is a process-wide singleton),
so hydra's children never import DBOS. Steps are trivial, like hydra's: each one returns
its argument plus one, and the return value is checkpointed by DBOS.
"""

from __future__ import annotations

from typing import Any

from dbos import DBOS, DBOSConfig
from sqlalchemy import event
from sqlalchemy.engine import Engine

QUEUE = "bench"


@DBOS.step()
def inc(x: int) -> int:
    return x + 1


@DBOS.workflow(name="bench-three")
def three(n: int) -> int:
    a = inc(n)
    b = inc(a)
    return inc(b)


@DBOS.workflow(name="bench-one")
def one(n: int) -> int:
    return inc(n)


@DBOS.workflow(name="bench-many")
def many(steps: int) -> int:
    x = 0
    for _ in range(steps):
        x = inc(x)
    return x


def sqlite_like_hydra() -> None:
    """Give DBOS's SQLite connections the settings hydra's have: WAL, synchronous=NORMAL.

    DBOS leaves SQLite in its default rollback-journal mode with synchronous=FULL; the
    comparison is meant to be on the same database, so both run WAL + NORMAL.
    """

    @event.listens_for(Engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        if type(dbapi_conn).__module__.startswith("sqlite3"):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
            cur.close()


def config(url: str, executor_id: str) -> DBOSConfig:
    return {
        "name": "hydra-bench",
        "system_database_url": url,
        "executor_id": executor_id,
        "log_level": "WARNING",
        # DBOS's default pool is min(32, cores + 4) = 6 threads here, which would cap
        # worker_concurrency=16 at 6 workflows at once; hydra runs 16 threads.
        "max_executor_threads": 32,
    }


def launch(url: str, executor_id: str, listen: list[str] | None = None) -> None:
    if url.startswith("sqlite"):
        sqlite_like_hydra()
    DBOS(config=config(url, executor_id))
    if listen is not None:
        DBOS.listen_queues(listen)
    DBOS.launch()


def register_queue(concurrency: int, polling_s: float) -> Any:
    return DBOS.register_queue(
        QUEUE,
        worker_concurrency=concurrency,
        polling_interval_sec=polling_s,
        on_conflict="always_update",
    )
