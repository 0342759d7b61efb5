"""PostgreSQL's notifications for messages and events: a message that wakes a waiting
receive NOTIFYs the namespace's "work" channel (idle workers claim it at once), and
``set_event`` its "events" channel, each delivered on commit to that namespace only."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from hydra.status import StepStatus
from hydra.store.base import EventRow, Lease, NewExecution, NewMessage, StepRow, WakeListener
from hydra.store.sql import SQLStore
from tests.conftest import StoreURLs

T0 = 1_700_000_000_000
LEASE_MS = 600_000


@pytest.fixture
def store(store_urls: StoreURLs) -> Iterator[SQLStore]:
    made = SQLStore(store_urls.url("postgres"), auto_migrate=True)
    try:
        yield made
    finally:
        made.close()


def _listening(store: SQLStore, ns: str, channel: str) -> WakeListener:
    listener = store.open_listener(ns, channel)
    assert listener is not None
    listener.wait(0.05)  # subscribed (it LISTENs when opened; drains anything stale)
    return listener


def _claimed(store: SQLStore, ns: str) -> tuple[str, Lease]:
    eid = str(uuid.uuid4())
    store.create_execution(
        NewExecution(eid, ns, "wf", b"in", 1, 0, None, None, run_at_ms=T0, created_at_ms=T0)
    )
    [claim] = store.claim(ns, ["wf"], "w1", now_ms=T0, lease_ms=LEASE_MS, limit=1)
    return eid, claim.lease


def test_set_event_notifies_the_namespace_events_channel(store: SQLStore) -> None:
    ns = f"events-{uuid.uuid4().hex}"
    eid, lease = _claimed(store, ns)
    listener = _listening(store, ns, "events")
    elsewhere = _listening(store, f"events-{uuid.uuid4().hex}", "events")
    work = _listening(store, ns, "work")
    try:
        step = StepRow(eid, "event-1", 0, StepStatus.COMPLETED, 1, b"1", kind="event")
        store.set_event(
            lease,
            EventRow(eid, "stage", b"1", T0),
            step,
            now_ms=T0,
            lease_ms=LEASE_MS,
        )
        assert listener.wait(10.0) is True, "set_event did not notify the events channel"
        assert elsewhere.wait(0.2) is False, "another namespace's events listener was woken"
        assert work.wait(0.2) is False, "set_event woke the work channel"
    finally:
        for each in (listener, elsewhere, work):
            each.close()


def test_a_message_that_wakes_a_receive_notifies_the_work_channel(store: SQLStore) -> None:
    ns = f"wake-{uuid.uuid4().hex}"
    eid, lease = _claimed(store, ns)
    waiting = StepRow(eid, "r1", 0, StepStatus.WAITING, 1, kind="receive")
    got = store.receive(
        lease,
        topic="t",
        waiting=waiting,
        suspend=True,
        deadline_ms=None,
        now_ms=T0 + 1,
        lease_ms=LEASE_MS,
    )
    assert got is None
    work = _listening(store, ns, "work")
    try:
        other_topic = NewMessage(str(uuid.uuid4()), ns, eid, "u", b"x", T0 + 2)
        store.send_message(other_topic, now_ms=T0 + 2)
        assert work.wait(0.2) is False, "a message no receive waits for woke the workers"
        store.send_message(NewMessage(str(uuid.uuid4()), ns, eid, "t", b"m", T0 + 3), now_ms=T0 + 3)
        assert work.wait(10.0) is True, "the waking message did not notify the work channel"
    finally:
        work.close()
