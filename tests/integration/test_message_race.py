"""A send racing a suspending receive on the databases with row locks: never a lost wake-up.

The store contract runs the same race 20 times per backend
(``check_send_races_a_suspending_receive``); here it runs 200 rounds on PostgreSQL and
MySQL/MariaDB, and counts which side won each round, so that a run in which one side
always won (and the race was never really run) fails instead of passing vacuously. Each
thread waits a random fraction of a transaction's time after the barrier: without it, a
loaded machine can make one side win 200 rounds in a row (seen on MariaDB in a full run).
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter

import pytest

from hydra.status import Status, StepStatus
from hydra.store.base import MessageRow, NewExecution, NewMessage, StepRow
from hydra.store.sql import SQLStore
from tests.conftest import StoreURLs

ROUNDS = 200
#: rounds run at most while one of the two orders has not been seen yet
MAX_ROUNDS = 1_000
#: the longest pause after the barrier (a few statements' time on a local server)
JITTER_S = 0.003
T0 = 1_700_000_000_000
LEASE_MS = 600_000


@pytest.fixture(params=["postgres", "mysql"])
def store(request: pytest.FixtureRequest, store_urls: StoreURLs) -> SQLStore:
    made = SQLStore(store_urls.url(request.param), auto_migrate=True)
    request.addfinalizer(made.close)
    return made


def _round(store: SQLStore, ns: str) -> str:
    """One execution claimed, then at a barrier one thread suspends it in a receive of
    topic "t" while another sends it a message of that topic. Returns who won."""
    eid = str(uuid.uuid4())
    store.create_execution(
        NewExecution(eid, ns, "wf", b"in", 1, 0, None, None, run_at_ms=T0, created_at_ms=T0)
    )
    [claim] = store.claim(ns, ["wf"], "w1", now_ms=T0, lease_ms=LEASE_MS, limit=1)
    waiting = StepRow(eid, "r1", 0, StepStatus.WAITING, 1, started_at=T0, kind="receive")
    message = NewMessage(str(uuid.uuid4()), ns, eid, "t", b"m", T0 + 2)
    barrier = threading.Barrier(2)
    got: list[MessageRow | None] = []
    errors: list[BaseException] = []

    def suspend() -> None:
        try:
            barrier.wait(10)
            time.sleep(random.uniform(0, JITTER_S))
            got.append(
                store.receive(
                    claim.lease,
                    topic="t",
                    waiting=waiting,
                    suspend=True,
                    deadline_ms=None,
                    now_ms=T0 + 1,
                    lease_ms=LEASE_MS,
                )
            )
        except BaseException as exc:
            errors.append(exc)

    def send() -> None:
        try:
            barrier.wait(10)
            time.sleep(random.uniform(0, JITTER_S))
            store.send_message(message, now_ms=T0 + 2)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=suspend), threading.Thread(target=send)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, f"{errors[0]!r}"
    if got and got[0] is not None:
        assert got[0].id == message.id
        return "received"  # the send committed first: the receive found its message
    row = store.get_execution(ns, eid)
    assert row is not None
    assert (row.status, row.wait_topic, row.wake_at) == (Status.SLEEPING, "t", T0 + 2), (
        f"the suspension committed but the message sent meanwhile left it {row.status} "
        f"with wake_at={row.wake_at}: a lost wake-up"
    )
    [unread] = store.list_messages(eid)
    assert unread.consumed_by is None
    return "woken"  # the suspension committed first: the send made it due


def test_a_send_racing_a_suspending_receive_never_loses_the_wake_up(store: SQLStore) -> None:
    ns = f"message-race-{uuid.uuid4().hex}"
    outcomes = Counter(_round(store, ns) for _ in range(ROUNDS))
    while len(outcomes) < 2 and outcomes.total() < MAX_ROUNDS:
        outcomes[_round(store, ns)] += 1
    # Both orders must have happened for the race to have been run at all.
    assert outcomes["received"] > 0 and outcomes["woken"] > 0, outcomes
