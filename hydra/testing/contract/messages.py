"""The contract of ``MessageStore``: messages to executions (``send_message``,
``send_from_run``, ``receive``) and the events they publish (``set_event``)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

from hydra.errors import ExecutionFinishedError, ExecutionNotFoundError
from hydra.status import Status, StepStatus
from hydra.store.base import EventRow, Lease, MessageRow, NewMessage, StepRow, Store
from hydra.testing.contract._support import (
    FAR,
    LONG_LEASE,
    T0,
    Check,
    StoreFactory,
    assert_fields,
    assert_lease_lost,
    assert_nothing_claimable,
    assert_same,
    claim_exactly,
    create_one,
    fresh_id,
    fresh_namespace,
    get_row,
    opened,
    step_record,
)


def message(
    ns: str,
    execution_id: str,
    topic: str = "t",
    payload: bytes = b"m",
    *,
    at: int = T0,
    key: str | None = None,
    sender: str | None = None,
    message_id: str | None = None,
) -> NewMessage:
    return NewMessage(
        id=message_id or fresh_id(),
        namespace=ns,
        execution_id=execution_id,
        topic=topic,
        payload=payload,
        sent_at_ms=at,
        idempotency_key=key,
        sender_id=sender,
    )


def waiting_row(
    execution_id: str, name: str, order: int, topic: str = "t", deadline: int | None = None
) -> StepRow:
    return StepRow(
        execution_id=execution_id,
        name=name,
        order=order,
        status=StepStatus.WAITING,
        attempts=1,
        started_at=T0,
        kind="receive",
        detail=json.dumps({"topic": topic, "deadline": deadline}),
    )


def receive(
    store: Store,
    lease: Lease,
    name: str,
    order: int,
    *,
    topic: str = "t",
    now: int = T0,
    suspend: bool = False,
    deadline: int | None = None,
) -> MessageRow | None:
    return store.receive(
        lease,
        topic=topic,
        waiting=waiting_row(lease.execution_id, name, order, topic, deadline),
        suspend=suspend,
        deadline_ms=deadline,
        now_ms=now,
        lease_ms=LONG_LEASE,
    )


def payloads(rows: list[MessageRow]) -> list[bytes]:
    return [r.payload for r in rows]


def check_send_and_receive_in_order(make_store: StoreFactory) -> None:
    """Messages wait for their receive, oldest first per topic; a receive consumes one
    and checkpoints it (the payload as the output) in the same call."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        eid = create_one(store, ns)
        for i, (topic, payload) in enumerate([("t", b"1"), ("u", b"other"), ("t", b"2")]):
            sent = message(ns, eid, topic, payload, at=T0 + i)
            assert store.send_message(sent, now_ms=T0 + i) == (sent.id, True), "a new message"
        stored = store.list_messages(eid)
        assert payloads(stored) == [b"1", b"other", b"2"], "list_messages is in send order"
        assert [m.seq for m in stored] == sorted(m.seq for m in stored), "seq grows"
        assert_fields(stored[0], "an unread message", topic="t", consumed_by=None, consumed_at=None)
        claim = claim_exactly(store, ns, "w1", T0 + 10, eid)
        first = receive(store, claim.lease, "r1", 0, now=T0 + 11)
        assert first is not None and first.payload == b"1", f"first receive got {first!r}"
        assert_fields(first, "the received message", consumed_by="r1", consumed_at=T0 + 11)
        detail = json.loads(store.list_steps(eid)[0].detail or "{}")
        assert detail == {"topic": "t", "deadline": None, "message": first.id}, (
            f"a received checkpoint's detail names the message: {detail!r}"
        )
        second = receive(store, claim.lease, "r2", 1, now=T0 + 12)
        assert second is not None and second.payload == b"2", f"second receive got {second!r}"
        none = receive(store, claim.lease, "r3", 2, now=T0 + 13)
        assert none is None, f"a receive with no message left returned {none!r}"
        steps = store.list_steps(eid)
        assert [(s.name, s.status, s.output, s.kind) for s in steps] == [
            ("r1", StepStatus.COMPLETED, b"1", "receive"),
            ("r2", StepStatus.COMPLETED, b"2", "receive"),
        ], f"the receive checkpoints: {steps!r}"
        assert steps[0].completed_at == T0 + 11, "a receive's checkpoint ends when it received"
        other = [m for m in store.list_messages(eid) if m.topic == "u"]
        assert [m.consumed_by for m in other] == [None], "another topic's message stays unread"


def check_receive_repeated_returns_the_same_message(make_store: StoreFactory) -> None:
    """The same receive checkpoint asked again (its reply was lost) gets the message it
    consumed, not the next one."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        eid = create_one(store, ns)
        for payload in (b"1", b"2"):
            store.send_message(message(ns, eid, payload=payload), now_ms=T0)
        claim = claim_exactly(store, ns, "w1", T0, eid)
        got = receive(store, claim.lease, "r1", 0, now=T0 + 1)
        again = receive(store, claim.lease, "r1", 0, now=T0 + 2)
        assert got is not None and again is not None and again.id == got.id, (
            f"receive repeated for checkpoint r1 returned {again!r}, expected {got!r}"
        )
        unread = [m.payload for m in store.list_messages(eid) if m.consumed_by is None]
        assert unread == [b"2"], f"the second message was consumed too: unread {unread!r}"


def check_send_idempotency(make_store: StoreFactory) -> None:
    """A key already used for a message to the same execution stores nothing; so does a
    message id already stored (the same send repeated). Keys are per execution."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        eid, other = create_one(store, ns), create_one(store, ns)
        first = message(ns, eid, key="slack-991")
        assert store.send_message(first, now_ms=T0) == (first.id, True)
        dup = message(ns, eid, payload=b"again", key="slack-991")
        assert store.send_message(dup, now_ms=T0 + 1) == (first.id, False), (
            "a reused idempotency key did not return the first message's id"
        )
        assert store.send_message(first, now_ms=T0 + 2) == (first.id, False), (
            "the same message sent again was not recognised"
        )
        assert payloads(store.list_messages(eid)) == [b"m"], "a duplicate message was stored"
        elsewhere = message(ns, other, key="slack-991")
        assert store.send_message(elsewhere, now_ms=T0) == (elsewhere.id, True), (
            "an idempotency key of another execution's message blocked this one"
        )


def check_send_to_unknown_or_finished(make_store: StoreFactory) -> None:
    """No message is stored for an execution that does not exist (here) or has ended."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        missing = fresh_id()
        for where, target in (("an unknown id", missing), ("another namespace", None)):
            eid = target or create_one(store, fresh_namespace())
            try:
                store.send_message(message(ns, eid), now_ms=T0)
            except ExecutionNotFoundError:
                pass
            else:
                raise AssertionError(f"send_message to {where} did not raise ExecutionNotFound")
            assert store.list_messages(eid) == [], f"a message to {where} was stored"
        done = create_one(store, ns)
        delivered = message(ns, done, key="webhook-7")
        store.send_message(delivered, now_ms=T0)
        claim = claim_exactly(store, ns, "w1", T0, done)
        store.finish(claim.lease, status=Status.COMPLETED, now_ms=T0 + 1, output=b"x")
        # A redelivery (same key, or the same message again) after the end is recognised:
        # its first send got through.
        again = message(ns, done, payload=b"again", key="webhook-7")
        assert store.send_message(again, now_ms=T0 + 2) == (delivered.id, False), (
            "a redelivered message to a finished execution was not recognised"
        )
        assert store.send_message(delivered, now_ms=T0 + 2) == (delivered.id, False)
        cancelled = create_one(store, ns)
        store.cancel(ns, cancelled, now_ms=T0 + 1)
        for what, eid in (("completed", done), ("cancelled", cancelled)):
            try:
                store.send_message(message(ns, eid), now_ms=T0 + 2)
            except ExecutionFinishedError:
                pass
            else:
                raise AssertionError(f"send_message to a {what} execution did not raise")
            stored = [m.id for m in store.list_messages(eid)]
            expected = [delivered.id] if eid == done else []
            assert stored == expected, f"a message to a {what} execution was stored"


def check_receive_suspends_and_a_send_wakes_it(make_store: StoreFactory) -> None:
    """With no message, the receive suspends (sleeping on its topic until its deadline,
    lease released, its waiting checkpoint written); a message of that topic makes it
    due at once, one of another topic does not."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        eid = create_one(store, ns)
        claim = claim_exactly(store, ns, "w1", T0, eid)
        got = receive(store, claim.lease, "r1", 0, now=T0 + 1, suspend=True, deadline=T0 + 10_000)
        assert got is None, f"a receive with nothing to receive returned {got!r}"
        assert_fields(
            get_row(store, ns, eid),
            "an execution waiting for a message",
            status=Status.SLEEPING,
            wake_at=T0 + 10_000,
            lease_owner=None,
            wait_topic="t",
        )
        waiting = waiting_row(eid, "r1", 0, "t", T0 + 10_000)
        assert_same(store.list_steps(eid), [waiting], "the waiting checkpoint")
        assert_nothing_claimable(store, ns, T0 + 100, "a waiting execution before any message")
        store.send_message(message(ns, eid, "u"), now_ms=T0 + 200)
        assert_nothing_claimable(store, ns, T0 + 300, "a message of another topic woke it")
        store.send_message(message(ns, eid, "t", b"yes"), now_ms=T0 + 400)
        assert get_row(store, ns, eid).wake_at == T0 + 400, "a message did not make it due"
        woken = claim_exactly(store, ns, "w2", T0 + 400, eid)
        assert_same(woken.steps, [waiting], "the woken claim's checkpoints")
        got = receive(store, woken.lease, "r1", 0, now=T0 + 401, suspend=True, deadline=T0 + 10_000)
        assert got is not None and got.payload == b"yes", f"the woken receive got {got!r}"
        step = store.list_steps(eid)[0]
        assert_fields(
            step,
            "the checkpoint after receiving",
            status=StepStatus.COMPLETED,
            output=b"yes",
            kind="receive",
        )


def check_receive_without_deadline(make_store: StoreFactory) -> None:
    """A receive without a deadline waits for a message only (or the execution's own
    timeout): no wake time before it."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        eid = create_one(store, ns)
        claim = claim_exactly(store, ns, "w1", T0, eid)
        receive(store, claim.lease, "r1", 0, now=T0 + 1, suspend=True, deadline=None)
        assert_fields(
            get_row(store, ns, eid), "waiting forever", status=Status.SLEEPING, wake_at=None
        )
        assert_nothing_claimable(store, ns, FAR, "a receive without deadline and no message")
        assert store.next_wake_at(ns, ["wf"]) is None, "next_wake_at of a message wait"
        store.send_message(message(ns, eid), now_ms=T0 + 50)
        claim_exactly(store, ns, "w2", T0 + 50, eid)
        timed = create_one(store, ns, timeout_ms=5_000)
        claim = claim_exactly(store, ns, "w1", T0, timed)
        receive(store, claim.lease, "r1", 0, now=T0 + 1, suspend=True, deadline=None)
        assert get_row(store, ns, timed).wake_at == T0 + 5_000, (
            "a message wait did not become due at the execution's timeout"
        )


def check_receive_fenced(make_store: StoreFactory) -> None:
    """After a takeover the old lease's receive, send and event write nothing; the
    message stays for the new owner."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        eid, dest = create_one(store, ns), create_one(store, ns, workflow="other")
        store.send_message(message(ns, eid, payload=b"keep"), now_ms=T0)
        old = claim_exactly(store, ns, "w-old", T0, eid, lease_ms=1_000)
        new = claim_exactly(store, ns, "w-new", T0 + 1_000, eid)
        for what, call in stale_message_writes(store, ns, old.lease, dest, T0 + 1_100):
            assert_lease_lost(call, f"{what} after a takeover")
        assert [m.consumed_by for m in store.list_messages(eid)] == [None], (
            "a stale receive consumed the message"
        )
        assert store.list_messages(dest) == [], "a stale send stored its message"
        assert store.get_events(eid) == [], "a stale set_event stored its event"
        assert store.list_steps(eid) == [], "a stale write left a checkpoint"
        got = receive(store, new.lease, "r1", 0, now=T0 + 1_200)
        assert got is not None and got.payload == b"keep", f"the new owner got {got!r}"


def stale_message_writes(
    store: Store, ns: str, lease: Lease, dest: str, now: int
) -> list[tuple[str, Callable[[], object]]]:
    eid = lease.execution_id
    send_step = StepRow(
        execution_id=eid, name="s1", order=0, status=StepStatus.COMPLETED, attempts=1, kind="send"
    )
    event_step = StepRow(
        execution_id=eid, name="e1", order=0, status=StepStatus.COMPLETED, attempts=1, kind="event"
    )
    return [
        ("receive", lambda: receive(store, lease, "r1", 0, now=now)),
        (
            "receive (suspending)",
            lambda: receive(store, lease, "r1", 0, now=now, suspend=True, deadline=now + 9),
        ),
        (
            "send_from_run",
            lambda: store.send_from_run(
                lease, message(ns, dest, sender=eid), send_step, now_ms=now, lease_ms=LONG_LEASE
            ),
        ),
        (
            "set_event",
            lambda: store.set_event(
                lease, EventRow(eid, "k", b"v", now), event_step, now_ms=now, lease_ms=LONG_LEASE
            ),
        ),
    ]


def check_send_from_run(make_store: StoreFactory) -> None:
    """hydra.send: the message and the sender's checkpoint in one fenced write, the
    message once even if repeated; nothing written for a finished or unknown target."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        sender, dest = create_one(store, ns), create_one(store, ns, workflow="other")
        claim = claim_exactly(store, ns, "w1", T0, sender)
        msg = message(ns, dest, payload=b"hello", sender=sender)
        step = StepRow(
            execution_id=sender,
            name="send-1",
            order=0,
            status=StepStatus.COMPLETED,
            attempts=1,
            started_at=T0 + 1,
            completed_at=T0 + 1,
            kind="send",
            detail=json.dumps({"to": dest, "topic": "t", "message": msg.id}),
        )
        for _ in range(2):  # the second time: the same send repeated
            store.send_from_run(claim.lease, msg, step, now_ms=T0 + 1, lease_ms=LONG_LEASE)
        received = store.list_messages(dest)
        assert [(m.id, m.payload, m.sender_id) for m in received] == [(msg.id, b"hello", sender)], (
            f"the sent message as stored: {received!r}"
        )
        assert [m.id for m in store.list_sent_messages(sender)] == [msg.id], "list_sent_messages"
        assert_same(store.list_steps(sender), [step], "the send's checkpoint")
        done = create_one(store, ns, workflow="done")
        finisher = claim_exactly(store, ns, "w2", T0, done, workflows=("done",))
        store.finish(
            finisher.lease, status=Status.FAILED, now_ms=T0 + 2, error_type="E", error_message="x"
        )
        for target, error in ((done, ExecutionFinishedError), (fresh_id(), ExecutionNotFoundError)):
            late = StepRow(sender, "send-2", 1, StepStatus.COMPLETED, 1, kind="send")
            try:
                store.send_from_run(
                    claim.lease,
                    message(ns, target, sender=sender),
                    late,
                    now_ms=T0 + 3,
                    lease_ms=LONG_LEASE,
                )
            except error:
                pass
            else:
                raise AssertionError(f"send_from_run to {target} did not raise {error.__name__}")
            assert [s.name for s in store.list_steps(sender)] == ["send-1"], (
                "a refused send_from_run wrote its checkpoint"
            )
        assert len(store.list_sent_messages(sender)) == 1, "a refused send stored its message"


def check_send_from_run_wakes_the_receiver(make_store: StoreFactory) -> None:
    """Two executions sending to each other at once neither deadlock nor lose a wake."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        waiter = create_one(store, ns, workflow="waiter")
        wait_claim = claim_exactly(store, ns, "w0", T0, waiter, workflows=("waiter",))
        a, b = create_one(store, ns), create_one(store, ns)
        receive(store, wait_claim.lease, "r1", 0, now=T0, suspend=True, deadline=None)
        found = store.claim(ns, ["wf"], "w1", now_ms=T0 + 1, lease_ms=LONG_LEASE, limit=10)
        claims = {c.execution.id: c for c in found}
        assert set(claims) == {a, b}, f"claimed {sorted(claims)}"
        errors: list[BaseException] = []

        def send(src: str, dst: str, n: int) -> None:
            try:
                for i in range(n):
                    step = StepRow(src, f"send-{i}", i, StepStatus.COMPLETED, 1, kind="send")
                    msg = message(ns, dst, payload=f"{src}-{i}".encode(), sender=src)
                    store.send_from_run(
                        claims[src].lease, msg, step, now_ms=T0 + 2, lease_ms=LONG_LEASE
                    )
                wake = message(ns, waiter, payload=src.encode(), sender=src)
                wake_step = StepRow(src, "send-w", n, StepStatus.COMPLETED, 1, kind="send")
                store.send_from_run(
                    claims[src].lease, wake, wake_step, now_ms=T0 + 3, lease_ms=LONG_LEASE
                )
            except BaseException as exc:
                errors.append(exc)

        threads = [
            threading.Thread(target=send, args=(a, b, 10)),
            threading.Thread(target=send, args=(b, a, 10)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, f"sending both ways at once failed: {errors[0]!r}"
        assert len(store.list_messages(a)) == len(store.list_messages(b)) == 10
        assert get_row(store, ns, waiter).wake_at == T0 + 3, "a hydra.send did not wake it"


def check_sleep_is_not_woken_by_a_message(make_store: StoreFactory) -> None:
    """Only a receive's wait is cut short by a message: a durable sleep is not, even
    after an earlier receive of that topic."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        eid = create_one(store, ns)
        claim = claim_exactly(store, ns, "w1", T0, eid)
        receive(store, claim.lease, "r1", 0, now=T0, suspend=True, deadline=T0 + 50)
        claim = claim_exactly(store, ns, "w1", T0 + 50, eid)
        receive(store, claim.lease, "r1", 0, now=T0 + 50)
        nap = step_record(eid, "nap", 1, status=StepStatus.SLEEPING, output=b"9000")
        store.suspend(claim.lease, wake_at_ms=T0 + 9_000, now_ms=T0 + 60, step=nap)
        store.send_message(message(ns, eid), now_ms=T0 + 100)
        assert_fields(
            get_row(store, ns, eid), "a sleep after a message", wake_at=T0 + 9_000, wait_topic=None
        )


def check_events(make_store: StoreFactory) -> None:
    """set_event: the last value per key wins, each with its checkpoint, per execution."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        eid, other = create_one(store, ns), create_one(store, ns, workflow="other")
        claim = claim_exactly(store, ns, "w1", T0, eid)
        for i, value in enumerate((b'"waiting"', b'"decided"')):
            step = StepRow(
                eid,
                f"event-{i + 1}",
                i,
                StepStatus.COMPLETED,
                1,
                output=value,
                started_at=T0 + i,
                completed_at=T0 + i,
                kind="event",
                detail=json.dumps({"key": "stage"}),
            )
            store.set_event(
                claim.lease,
                EventRow(eid, "stage", value, T0 + i),
                step,
                now_ms=T0 + i,
                lease_ms=LONG_LEASE,
            )
        progress = StepRow(eid, "event-3", 2, StepStatus.COMPLETED, 1, kind="event")
        store.set_event(
            claim.lease,
            EventRow(eid, "progress", b"0.5", T0 + 5),
            progress,
            now_ms=T0 + 5,
            lease_ms=LONG_LEASE,
        )
        expected = [
            EventRow(eid, "progress", b"0.5", T0 + 5),
            EventRow(eid, "stage", b'"decided"', T0 + 1),
        ]
        assert_same(store.get_events(eid), expected, "the events by key")
        assert [s.name for s in store.list_steps(eid)] == ["event-1", "event-2", "event-3"]
        assert store.get_events(other) == [], "events leaked to another execution"
        assert store.get_events(fresh_id()) == [], "an unknown id has no events"


def check_send_races_a_suspending_receive(make_store: StoreFactory) -> None:
    """A message sent while the receiver suspends is never lost: after both, either the
    receive got it or the execution is due. 20 rounds of two threads at a barrier."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        for round_ in range(20):
            _race_round(store, ns, round_)


def _race_round(store: Store, ns: str, round_: int) -> None:
    eid = create_one(store, ns)
    claim = claim_exactly(store, ns, "w1", T0, eid)
    barrier = threading.Barrier(2)
    got: list[MessageRow | None] = []
    errors: list[BaseException] = []

    def suspend() -> None:
        try:
            barrier.wait(10)
            got.append(
                receive(store, claim.lease, "r1", 0, now=T0 + 1, suspend=True, deadline=None)
            )
        except BaseException as exc:
            errors.append(exc)

    def send() -> None:
        try:
            barrier.wait(10)
            store.send_message(message(ns, eid), now_ms=T0 + 2)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=suspend), threading.Thread(target=send)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, f"round {round_}: {errors[0]!r}"
    if got and got[0] is not None:
        return  # the receive found the message
    row = get_row(store, ns, eid)
    assert row.status == Status.SLEEPING and row.wake_at == T0 + 2, (
        f"round {round_}: a message sent while the receive suspended left the "
        f"execution {row.status} with wake_at={row.wake_at}: a lost wake-up"
    )


def check_step_kind_and_detail(make_store: StoreFactory) -> None:
    """A checkpoint's kind and detail are stored as given (sleeps and steps too)."""
    with opened(make_store) as store:
        ns = fresh_namespace()
        eid = create_one(store, ns)
        claim = claim_exactly(store, ns, "w1", T0, eid)
        plain = step_record(eid, "a", 0)
        assert plain.kind == "step" and plain.detail is None
        store.save_step(claim.lease, plain, now_ms=T0, lease_ms=LONG_LEASE)
        nap = StepRow(
            eid,
            "sleep-1",
            1,
            StepStatus.SLEEPING,
            1,
            output=b"9",
            kind="sleep",
            detail='{"why": "\\u00e9t\\u00e9"}',
        )
        store.suspend(claim.lease, wake_at_ms=T0 + 9, now_ms=T0 + 1, step=nap)
        assert_same(store.list_steps(eid), [plain, nap], "steps with kind and detail")


CHECKS: list[Check] = [
    check_send_and_receive_in_order,
    check_receive_repeated_returns_the_same_message,
    check_send_idempotency,
    check_send_to_unknown_or_finished,
    check_receive_suspends_and_a_send_wakes_it,
    check_receive_without_deadline,
    check_receive_fenced,
    check_send_from_run,
    check_send_from_run_wakes_the_receiver,
    check_sleep_is_not_woken_by_a_message,
    check_events,
    check_send_races_a_suspending_receive,
    check_step_kind_and_detail,
]
