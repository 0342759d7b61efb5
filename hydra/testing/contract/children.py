"""The contract of ``ChildStore`` and of a child's end reaching its parent: ``start_child``
(the child and the parent's checkpoint in one fenced write, once), and ``finish``/``cancel``
sending the end to the parent (``child_ended``), waking it if it waits."""

from __future__ import annotations

import dataclasses
import json

from hydra.status import Status, StepStatus
from hydra.store.base import (
    CHILD_END_WAKE_DELAY_MS,
    Claim,
    NewExecution,
    StepRow,
    Store,
    child_topic,
    parse_child_end,
)
from hydra.testing.contract._support import (
    LONG_LEASE,
    T0,
    Check,
    StoreFactory,
    assert_fields,
    assert_lease_lost,
    assert_same,
    claim_exactly,
    create_one,
    fresh_id,
    fresh_namespace,
    get_row,
    new_execution,
    opened,
)
from hydra.testing.contract.messages import receive

CHILD = "child-wf"


def child_of(ns: str, parent: str, name: str = "ship", *, at: int = T0) -> NewExecution:
    base = new_execution(ns, workflow=CHILD, run_at=at, input=b'"payload"')
    return NewExecution(
        id=f"{parent[:8]}-{name}-{fresh_id()[:20]}",
        namespace=ns,
        workflow_name=CHILD,
        input=base.input,
        max_attempts=base.max_attempts,
        retry_backoff_ms=base.retry_backoff_ms,
        timeout_ms=None,
        idempotency_key=None,
        run_at_ms=at,
        created_at_ms=at,
        trigger_type="child",
        trigger_source=parent,
        parent_id=parent,
    )


def start_row(parent: str, name: str, child_id: str, order: int = 0) -> StepRow:
    return StepRow(
        execution_id=parent,
        name=name,
        order=order,
        status=StepStatus.COMPLETED,
        attempts=1,
        started_at=T0,
        completed_at=T0,
        kind="child",
        detail=json.dumps({"child": child_id, "workflow": CHILD}),
    )


def check_start_child_once(make_store: StoreFactory) -> None:
    """The child and the parent's checkpoint are written together; the same start again
    (a lost reply) finds the child and writes no second one."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        parent = create_one(store, ns)
        claim = claim_exactly(store, ns, "w1", T0, parent)
        child = child_of(ns, parent)
        row = start_row(parent, "ship", child.id)
        got = store.start_child(claim.lease, child, row, now_ms=T0 + 1, lease_ms=LONG_LEASE)
        assert got == (child.id, True), f"start_child of a new child returned {got!r}"
        again = store.start_child(claim.lease, child, row, now_ms=T0 + 2, lease_ms=LONG_LEASE)
        assert again == (child.id, False), f"start_child repeated returned {again!r}"
        assert_fields(
            get_row(store, ns, child.id),
            "the child",
            parent_id=parent,
            status=Status.PENDING,
            workflow_name=CHILD,
            trigger_type="child",
        )
        assert_same(store.list_steps(parent), [row], "the parent's start checkpoint")
        kids = store.list_executions(ns, parent_id=parent)
        assert [k.id for k in kids] == [child.id], f"list_executions(parent_id=...) {kids!r}"
        assert get_row(store, ns, parent).parent_id is None, "a top-level execution's parent"
        assert store.list_executions(ns, parent_id=child.id) == [], "a child has no children"


def check_start_child_keeps_trace_context(make_store: StoreFactory) -> None:
    """A child's ``trace_context`` (its parent run's) is stored by ``start_child`` and
    comes back from get_execution and the child's claim."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        parent = create_one(store, ns)
        claim = claim_exactly(store, ns, "w1", T0, parent)
        text = '{"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}'
        child = dataclasses.replace(child_of(ns, parent), trace_context=text)
        row = start_row(parent, "ship", child.id)
        got = store.start_child(claim.lease, child, row, now_ms=T0 + 1, lease_ms=LONG_LEASE)
        assert got == (child.id, True), f"start_child of a new child returned {got!r}"
        assert_fields(get_row(store, ns, child.id), "the child", trace_context=text)
        assert_fields(get_row(store, ns, parent), "the parent", trace_context=None)
        claimed = claim_exactly(store, ns, "w2", T0 + 1, child.id, workflows=(CHILD,))
        assert_fields(claimed.execution, "the child's claim", trace_context=text)


def check_start_child_fenced(make_store: StoreFactory) -> None:
    """A parent whose lease is gone starts no child and writes no checkpoint."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        parent = create_one(store, ns)
        old = claim_exactly(store, ns, "w-old", T0, parent, lease_ms=1_000)
        claim_exactly(store, ns, "w-new", T0 + 1_000, parent)
        child = child_of(ns, parent)
        row = start_row(parent, "ship", child.id)
        assert_lease_lost(
            lambda: store.start_child(
                old.lease, child, row, now_ms=T0 + 1_100, lease_ms=LONG_LEASE
            ),
            "start_child after a takeover",
        )
        assert store.get_execution(ns, child.id) is None, "a fenced start_child made a child"
        assert store.list_steps(parent) == [], "a fenced start_child wrote its checkpoint"


def _start(store: Store, ns: str, name: str = "ship") -> tuple[str, str, Claim]:
    parent = create_one(store, ns)
    claim = claim_exactly(store, ns, "w1", T0, parent)
    child = child_of(ns, parent, name)
    store.start_child(
        claim.lease, child, start_row(parent, name, child.id), now_ms=T0, lease_ms=LONG_LEASE
    )
    return parent, child.id, claim


def check_child_end_wakes_a_waiting_parent(make_store: StoreFactory) -> None:
    """A parent suspended on its child's topic is due right after the child finishes
    (``CHILD_END_WAKE_DELAY_MS``), and receives the child's end: status and output."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        parent, child, claim = _start(store, ns)
        topic = child_topic(child)
        receive(store, claim.lease, "wait-ship", 1, topic=topic, now=T0 + 1, suspend=True)
        assert get_row(store, ns, parent).wake_at is None, "a parent waiting for a child"
        kid = claim_exactly(store, ns, "w2", T0 + 10, child, workflows=(CHILD,))
        store.finish(
            kid.lease, status=Status.COMPLETED, now_ms=T0 + 20, output=b'"label"', parent_id=parent
        )
        assert get_row(store, ns, parent).wake_at == T0 + 20 + CHILD_END_WAKE_DELAY_MS, (
            "the child's end did not make its waiting parent due"
        )
        woken = claim_exactly(store, ns, "w1", T0 + 21, parent)
        got = receive(store, woken.lease, "wait-ship", 1, topic=topic, now=T0 + 22)
        assert got is not None, "the waiting parent found no end of its child"
        assert parse_child_end(got.payload) == (Status.COMPLETED, b'"label"', None, None)
        assert got.sender_id == child, "the end's sender is the child"


def check_child_end_before_the_wait_is_kept(make_store: StoreFactory) -> None:
    """A child that fails before its parent waits: the end waits for the parent's
    receive, which takes it at once (no suspension)."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        parent, child, claim = _start(store, ns)
        kid = claim_exactly(store, ns, "w2", T0 + 1, child, workflows=(CHILD,))
        store.finish(
            kid.lease,
            status=Status.FAILED,
            now_ms=T0 + 2,
            error_type="E",
            error_message="no stock",
            parent_id=parent,
        )
        got = receive(store, claim.lease, "wait-ship", 1, topic=child_topic(child), now=T0 + 3)
        assert got is not None, "the end of a child that ended first was not kept"
        assert parse_child_end(got.payload) == (Status.FAILED, None, "E", "no stock")


def check_cancel_sends_a_child_s_end(make_store: StoreFactory) -> None:
    """Cancelling a child sends its end (cancelled) to its parent; nothing is sent to a
    parent that has ended."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        parent, child, _ = _start(store, ns)
        assert store.cancel(ns, child, now_ms=T0 + 5)
        ends = [m for m in store.list_messages(parent) if m.topic == child_topic(child)]
        assert len(ends) == 1, f"the cancelled child's end, as sent: {ends!r}"
        assert parse_child_end(ends[0].payload)[0] == Status.CANCELLED
        other_parent, other_child, other_claim = _start(store, ns, "other")
        store.finish(other_claim.lease, status=Status.COMPLETED, now_ms=T0 + 6, output=b"1")
        assert store.cancel(ns, other_child, now_ms=T0 + 7)
        assert store.list_messages(other_parent) == [], "an end was sent to an ended parent"


def check_purge_keeps_a_parent_with_an_unfinished_child(make_store: StoreFactory) -> None:
    """A finished parent whose child still runs is not purged; once the child ended, the
    parent goes with the messages sent to it (its child's end)."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        parent, child, claim = _start(store, ns)
        store.finish(claim.lease, status=Status.COMPLETED, now_ms=T0 + 1, output=b"1")
        purge = {"ended_before_ms": T0 + 10**6, "statuses": [Status.COMPLETED], "limit": 10}
        assert store.purge_executions(ns, **purge) == [], "a parent with a running child"  # type: ignore[arg-type]
        kid = claim_exactly(store, ns, "w2", T0 + 2, child, workflows=(CHILD,))
        store.finish(
            kid.lease, status=Status.COMPLETED, now_ms=T0 + 3, output=b"2", parent_id=parent
        )
        got = store.purge_executions(ns, **purge)  # type: ignore[arg-type]
        assert sorted(got) == sorted([parent, child]), f"purged {got!r}"
        assert store.list_messages(parent) == [], "messages of a purged execution were left"


def check_purge_keeps_the_ancestors_of_an_unfinished_grandchild(
    make_store: StoreFactory,
) -> None:
    """In one batch: a finished parent whose finished child has a grandchild still
    pending is kept, with that child; another finished family beside it goes. Once the
    grandchild ends, the three go together."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        kept, middle, claim = _start(store, ns, "middle")
        store.finish(claim.lease, status=Status.COMPLETED, now_ms=T0 + 1, output=b"1")
        mid = claim_exactly(store, ns, "w2", T0 + 2, middle, workflows=(CHILD,))
        # Due later than the other family's claims below, which must not take it.
        grandchild = child_of(ns, middle, "leaf", at=T0 + 1_000)
        store.start_child(
            mid.lease,
            grandchild,
            start_row(middle, "leaf", grandchild.id),
            now_ms=T0 + 2,
            lease_ms=LONG_LEASE,
        )
        store.finish(mid.lease, status=Status.COMPLETED, now_ms=T0 + 3, output=b"2", parent_id=kept)
        other, other_child, other_claim = _start(store, ns, "other")
        store.finish(other_claim.lease, status=Status.COMPLETED, now_ms=T0 + 4, output=b"3")
        kid = claim_exactly(store, ns, "w3", T0 + 5, other_child, workflows=(CHILD,))
        store.finish(
            kid.lease, status=Status.COMPLETED, now_ms=T0 + 6, output=b"4", parent_id=other
        )
        purge = {"ended_before_ms": T0 + 10**6, "statuses": [Status.COMPLETED], "limit": 10}
        got = store.purge_executions(ns, **purge)  # type: ignore[arg-type]
        assert sorted(got) == sorted([other, other_child]), (
            f"purged {got!r}: only the family with nothing unfinished should go"
        )
        get_row(store, ns, kept), get_row(store, ns, middle)  # both still there
        leaf = claim_exactly(store, ns, "w4", T0 + 1_000, grandchild.id, workflows=(CHILD,))
        store.finish(
            leaf.lease, status=Status.COMPLETED, now_ms=T0 + 1_001, output=b"5", parent_id=middle
        )
        got = store.purge_executions(ns, **purge)  # type: ignore[arg-type]
        assert sorted(got) == sorted([kept, middle, grandchild.id]), f"purged {got!r}"


CHECKS: list[Check] = [
    check_start_child_once,
    check_start_child_keeps_trace_context,
    check_start_child_fenced,
    check_child_end_wakes_a_waiting_parent,
    check_child_end_before_the_wait_is_kept,
    check_cancel_sends_a_child_s_end,
    check_purge_keeps_a_parent_with_an_unfinished_child,
    check_purge_keeps_the_ancestors_of_an_unfinished_grandchild,
]
