"""Database faults under a real worker, on real SQL stores (issue 9): SQLite locked past
the store's retry window in the middle of a checkpoint, and a claim whose reply is lost
after it committed. Each failed on the code before the fix (the first reached the
workflow's ``except`` and completed it without the step's record; the second left
orphan leases that a takeover, using an attempt, picked up only after claim_timeout)."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

import hydra
import hydra.store.sql.sqlite
from tests.conftest import BackendStoreFactory

pytestmark = pytest.mark.slow

WAIT = 30


def test_sqlite_locked_past_the_retry_window_never_reaches_workflow_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holds SQLite's write lock for 2 s while step b's checkpoint is
    written: longer than the busy timeout plus the store's reconnect window. The run
    stops (its ``except`` does not run, nothing more is written) and the execution resumes
    when the lock is gone, with no attempt used; b's body runs again (it was in flight)."""
    monkeypatch.setattr(hydra.store.sql.sqlite, "BUSY_TIMEOUT_MS", 100)
    path = tmp_path / "hydra.db"
    store = hydra.SQLStore(f"sqlite:///{path}", reconnect_window=0.3)
    engine = hydra.Engine(store, namespace=f"locked-{uuid.uuid4().hex[:8]}")
    ledger: Counter[str] = Counter()
    in_b = threading.Event()
    locked = threading.Event()

    def b() -> str:
        ledger["b"] += 1
        if ledger["b"] == 1:
            in_b.set()
            assert locked.wait(WAIT)
        return "b"

    class Compensating(hydra.Workflow[None]):
        name = "compensating"

        def run(self, ctx: hydra.WorkflowContext, req: None) -> str:
            try:
                hydra.step(ctx, "a", lambda: ledger.update(["a"]))
                hydra.step(ctx, "b", b)
                hydra.step(ctx, "c", lambda: ledger.update(["c"]))
            except Exception:
                ledger["compensate"] += 1
                raise
            return "done"

    worker = hydra.Worker(
        engine, concurrency=1, poll_interval=0.05, heartbeat_interval=0.5, claim_timeout=30
    )
    worker.register(Compensating())
    worker.start()
    holder = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        eid = engine.start_workflow("compensating", max_attempts=1)
        assert in_b.wait(WAIT)
        holder.execute("BEGIN EXCLUSIVE")  # the write lock, as another process would
        locked.set()
        time.sleep(2.0)
        holder.execute("ROLLBACK")
        done = engine.wait(eid, timeout=WAIT)
    finally:
        holder.close()
        worker.shutdown(timeout=5)
        store.close()
    assert (done.status, done.attempt, done.output) == (hydra.Status.COMPLETED, 1, "done")
    assert ledger == Counter({"a": 1, "b": 2, "c": 1}), ledger
    assert [s.name for s in done.steps] == ["a", "b", "c"]


@pytest.fixture
def sql_url(sql_store_factory: BackendStoreFactory, tmp_path: Path) -> str:
    if sql_store_factory.backend == "sqlite":
        return f"sqlite:///{tmp_path}/hydra.db"
    assert sql_store_factory.url is not None
    return sql_store_factory.url


@pytest.fixture
def store(sql_url: str) -> Iterator[hydra.SQLStore]:
    s = hydra.SQLStore(sql_url, auto_migrate=True)
    try:
        yield s
    finally:
        s.close()


def _lose_the_first_claim_reply(store: hydra.SQLStore) -> list[int]:
    """The store's first non-empty claim commits, then its connection "drops" before the
    reply: the store retries it (as it must: it cannot know the claim committed)."""
    real_claim = store.claim
    real_retrying = store._retrying
    lost: list[int] = []

    def claim(*args: Any, **kwargs: Any) -> Any:
        if lost:
            return real_claim(*args, **kwargs)

        claimer = threading.get_ident()

        def retrying(once: Callable[[], Any]) -> Any:
            if threading.get_ident() != claimer:  # another thread's call meanwhile
                return real_retrying(once)

            def first_commits_then_drops() -> Any:
                result = once()
                if result and not lost:
                    lost.append(len(result))
                    raise OperationalError(
                        "claim",
                        {},
                        Exception("server closed the connection unexpectedly"),
                        connection_invalidated=True,
                    )
                return result

            return real_retrying(first_commits_then_drops)

        store._retrying = retrying  # type: ignore[method-assign]
        try:
            return real_claim(*args, **kwargs)
        finally:
            store._retrying = real_retrying  # type: ignore[method-assign]

    store.claim = claim  # type: ignore[method-assign]
    return lost


def test_a_claim_whose_reply_was_lost_is_given_back_at_once(store: hydra.SQLStore) -> None:
    engine = hydra.Engine(store, namespace=f"lost-reply-{uuid.uuid4().hex[:8]}")
    ran: Counter[str] = Counter()

    class One(hydra.Workflow[int]):
        name = "one"

        def run(self, ctx: hydra.WorkflowContext, n: int) -> int:
            return hydra.step(ctx, "s", lambda: ran.update([ctx.execution_id]) or n)

    ids = [engine.start_workflow("one", i, max_attempts=1) for i in range(4)]
    lost = _lose_the_first_claim_reply(store)
    worker = hydra.Worker(
        engine, concurrency=4, poll_interval=0.05, heartbeat_interval=5, claim_timeout=60
    )
    worker.register(One())
    before = store.reconnects
    worker.start()
    try:
        results = [engine.wait(eid, timeout=10) for eid in ids]  # far below claim_timeout
    finally:
        worker.shutdown(timeout=5)
    assert lost and lost[0] >= 1, "no claim reply was lost"
    assert store.reconnects > before
    assert [(r.status, r.attempt, r.output) for r in results] == [
        (hydra.Status.COMPLETED, 1, i) for i in range(4)
    ]
    assert sorted(ran.values()) == [1, 1, 1, 1]
