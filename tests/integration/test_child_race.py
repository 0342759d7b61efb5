"""A child ending while its parent suspends to wait for it, on the databases with row
locks: never a lost wake-up (issue 13).

The child's end travels to the parent as a message in the transaction that ends the
child (its row locked first, then the parent's); the parent's wait locks its own row
(its fenced lease extension) before it looks for that message. 200 rounds on PostgreSQL
and MySQL/MariaDB, counting which side won each round so that a run in which one side
always won (the race never really run) fails; a random pause after the barrier makes
both orders happen (as in test_message_race)."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter

import pytest

from hydra.status import Status, StepStatus
from hydra.store.base import (
    CHILD_END_WAKE_DELAY_MS,
    MessageRow,
    NewExecution,
    StepRow,
    child_topic,
    parse_child_end,
)
from hydra.store.sql import SQLStore
from tests.conftest import StoreURLs

ROUNDS = 200
MAX_ROUNDS = 1_000
JITTER_S = 0.003
T0 = 1_700_000_000_000
LEASE_MS = 600_000


@pytest.fixture(params=["postgres", "mysql"])
def store(request: pytest.FixtureRequest, store_urls: StoreURLs) -> SQLStore:
    made = SQLStore(store_urls.url(request.param), auto_migrate=True)
    request.addfinalizer(made.close)
    return made


def _round(store: SQLStore, ns: str) -> str:
    """A parent claimed with a child started; at a barrier the parent suspends in its
    wait while the child's worker finishes it. Returns who won."""
    parent = str(uuid.uuid4())
    store.create_execution(
        NewExecution(parent, ns, "parent", b"in", 1, 0, None, None, run_at_ms=T0, created_at_ms=T0)
    )
    [held] = store.claim(ns, ["parent"], "w1", now_ms=T0, lease_ms=LEASE_MS, limit=1)
    child = NewExecution(
        f"{parent[:8]}-child-{uuid.uuid4().hex[:16]}",
        ns,
        "child",
        b"in",
        1,
        0,
        None,
        None,
        run_at_ms=T0,
        created_at_ms=T0,
        trigger_type="child",
        parent_id=parent,
    )
    start = StepRow(parent, "c", 0, StepStatus.COMPLETED, 1, kind="child")
    store.start_child(held.lease, child, start, now_ms=T0, lease_ms=LEASE_MS)
    [kid] = store.claim(ns, ["child"], "w2", now_ms=T0, lease_ms=LEASE_MS, limit=1)
    topic = child_topic(child.id)
    waiting = StepRow(parent, "wait-c", 1, StepStatus.WAITING, 1, started_at=T0, kind="child_wait")
    barrier = threading.Barrier(2)
    got: list[MessageRow | None] = []
    errors: list[BaseException] = []

    def suspend() -> None:
        try:
            barrier.wait(10)
            time.sleep(random.uniform(0, JITTER_S))
            got.append(
                store.receive(
                    held.lease,
                    topic=topic,
                    waiting=waiting,
                    suspend=True,
                    deadline_ms=None,
                    now_ms=T0 + 1,
                    lease_ms=LEASE_MS,
                )
            )
        except BaseException as exc:
            errors.append(exc)

    def finish() -> None:
        try:
            barrier.wait(10)
            time.sleep(random.uniform(0, JITTER_S))
            store.finish(
                kid.lease,
                status=Status.COMPLETED,
                now_ms=T0 + 2,
                output=b'"done"',
                parent_id=parent,
            )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=suspend), threading.Thread(target=finish)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, f"{errors[0]!r}"
    if got and got[0] is not None:
        assert parse_child_end(got[0].payload)[:2] == (Status.COMPLETED, b'"done"')
        return "received"  # the child ended first: the wait found its end
    row = store.get_execution(ns, parent)
    assert row is not None
    assert (row.status, row.wait_topic, row.wake_at) == (
        Status.SLEEPING,
        topic,
        T0 + 2 + CHILD_END_WAKE_DELAY_MS,
    ), (
        f"the parent's suspension committed but its child's end left it {row.status} "
        f"with wake_at={row.wake_at}: a lost wake-up"
    )
    return "woken"  # the parent suspended first: the child's end made it due


def test_a_child_ending_while_its_parent_suspends_never_loses_the_wake_up(
    store: SQLStore,
) -> None:
    ns = f"child-race-{uuid.uuid4().hex}"
    outcomes = Counter(_round(store, ns) for _ in range(ROUNDS))
    while len(outcomes) < 2 and outcomes.total() < MAX_ROUNDS:
        outcomes[_round(store, ns)] += 1
    assert outcomes["received"] > 0 and outcomes["woken"] > 0, outcomes
