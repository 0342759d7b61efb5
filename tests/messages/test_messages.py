"""Messages and events in workflows (``hydra.receive``/``send``/``set_event``) on every
store, through the test environment: buffering and order, idempotent sends, durable
deadlines, exactly-once delivery across crashes and takeovers."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import hydra
from hydra.status import StepStatus
from hydra.store.base import Store
from hydra.testing import FakeClock, StuckExecutionError, TestEnvironment, explore_crashes

MakeEnv = Callable[..., TestEnvironment]
DAY = timedelta(days=1)


@pytest.fixture
def make_env(store_factory: Callable[[], Store]) -> MakeEnv:
    def make(**options: Any) -> TestEnvironment:
        options.setdefault("namespace", f"msg-{uuid.uuid4().hex[:12]}")
        options.setdefault("clock", FakeClock(datetime(2030, 1, 1, tzinfo=UTC)))
        return TestEnvironment(store=store_factory(), **options)

    return make


@dataclass
class Decision:
    approved: bool
    by: str = "manager"


@hydra.workflow("collect")
def collect(ctx: hydra.WorkflowContext, count: int) -> list[Any]:
    """Receives ``count`` messages of topic "item" (and one "note" last)."""
    items = [hydra.receive(ctx, "item") for _ in range(count)]
    return [*items, hydra.receive(ctx, "note")]


def test_messages_sent_before_the_receive_wait_for_it_in_order(make_env: MakeEnv) -> None:
    env = make_env()
    env.register(collect)
    eid = env.start(collect, 3)
    env.send(eid, "note", "last")  # another topic: not taken by the "item" receives
    for i in range(3):
        env.send(eid, "item", i)
    execution = env.run_until_complete(eid)
    assert execution.output == [0, 1, 2, "last"]
    receives = [s for s in execution.steps if s.kind == "receive"]
    assert [s.name for s in receives] == ["receive-1", "receive-2", "receive-3", "receive-4"]
    assert [s.detail["topic"] for s in receives] == ["item", "item", "item", "note"]
    by_id = {m.id: m.payload for m in env.engine.list_messages(eid)}
    assert [by_id[s.detail["message"]] for s in receives] == [0, 1, 2, "last"]
    assert all(s.status == StepStatus.COMPLETED for s in receives)
    messages = env.engine.list_messages(eid)
    assert sorted((m.received_by or "", m.payload) for m in messages) == [
        ("receive-1", 0), ("receive-2", 1), ("receive-3", 2), ("receive-4", "last"),
    ]  # fmt: skip


def test_a_receive_with_no_message_suspends_and_a_send_wakes_it(make_env: MakeEnv) -> None:
    env = make_env()
    env.register(collect)
    eid = env.start(collect, 1)
    env.run_until_idle()
    waiting = env.execution(eid)
    assert (waiting.status, waiting.wait_topic, waiting.sleep_until) == ("sleeping", "item", None)
    assert waiting.worker_id is None  # lease released
    step = waiting.step("receive-1")
    assert step is not None and (step.status, step.detail) == (
        StepStatus.WAITING,
        {"topic": "item", "deadline": None},
    )
    env.send(eid, "item", {"sku": "a"})
    assert env.run_until_idle() == 1  # due at once: no clock move needed
    assert env.execution(eid).wait_topic == "note"
    env.send(eid, "note", None)
    assert env.run_until_complete(eid).output == [{"sku": "a"}, None]


def test_an_idempotency_key_stores_the_message_once(make_env: MakeEnv) -> None:
    env = make_env()
    env.register(collect)
    eid = env.start(collect, 2)
    for _ in range(3):
        env.send(eid, "item", "webhook", idempotency_key="stripe-evt-1")
    env.send(eid, "item", "second")
    env.send(eid, "note", "n")
    assert env.run_until_complete(eid).output == ["webhook", "second", "n"]
    assert len(env.engine.list_messages(eid)) == 3


def test_a_send_to_an_unknown_or_finished_execution_is_refused(make_env: MakeEnv) -> None:
    env = make_env()
    env.register(collect)
    with pytest.raises(hydra.ExecutionNotFoundError):
        env.engine.send(str(uuid.uuid4()), "item", 1)
    eid = env.start(collect, 0)
    env.send(eid, "note", "n")
    env.run_until_complete(eid)
    with pytest.raises(hydra.ExecutionFinishedError, match="completed"):
        env.engine.send(eid, "item", 1)
    assert [m.payload for m in env.engine.list_messages(eid)] == ["n"]
    cancelled = env.start(collect, 1)
    env.engine.cancel(cancelled)
    with pytest.raises(hydra.ExecutionFinishedError, match="cancelled"):
        env.engine.send(cancelled, "item", 1)


@hydra.workflow("approval-3d")
def approval(ctx: hydra.WorkflowContext, req: str) -> str:
    hydra.set_event(ctx, "stage", "waiting")
    try:
        decision = hydra.receive(ctx, "decision", timeout=3 * DAY, result_type=Decision)
    except hydra.WaitTimeoutError:
        hydra.set_event(ctx, "stage", "escalated")
        return "escalated"
    hydra.set_event(ctx, "stage", "decided")
    return f"approved by {decision.by}" if decision.approved else "rejected"


def test_a_message_at_day_2_9_of_a_3_day_timeout_is_received(make_env: MakeEnv) -> None:
    env = make_env()
    env.register(approval)
    eid = env.start(approval, "r")
    env.run_until_idle()
    deadline = env.execution(eid).sleep_until
    assert deadline == datetime(2030, 1, 4, tzinfo=UTC)
    env.advance(2.9 * 86400)
    assert env.execution(eid).status == "sleeping"
    env.send(eid, "decision", Decision(True, by="ada"))
    assert env.run_until_complete(eid).output == "approved by ada"
    assert env.engine.get_events(eid) == {"stage": "decided"}


def test_a_restart_at_day_2_does_not_extend_the_deadline(make_env: MakeEnv) -> None:
    """The execution run again at day 2 (cancelled and retried by an operator) reaches
    its receive with the deadline stored on day 0, not a new 3 days."""
    env = make_env()
    env.register(approval)
    eid = env.start(approval, "r")
    env.run_until_idle()
    env.advance(2 * DAY)
    env.engine.cancel(eid)
    env.engine.retry(eid)
    env.run_until_idle()
    again = env.execution(eid)
    assert (again.status, again.sleep_until) == ("sleeping", datetime(2030, 1, 4, tzinfo=UTC))
    execution = env.run_until_complete(eid)
    assert execution.output == "escalated"
    assert env.clock.now() == datetime(2030, 1, 4, tzinfo=UTC)  # day 3, not day 5
    timed_out = execution.step("receive-1")
    assert timed_out is not None and timed_out.status == StepStatus.TIMED_OUT
    assert timed_out.error_type == "WaitTimeoutError"
    assert "within 3 days" in (timed_out.error_message or "")


def test_a_message_after_the_timeout_is_not_taken_by_the_timed_out_receive(
    make_env: MakeEnv,
) -> None:
    @hydra.workflow("late")
    def late(ctx: hydra.WorkflowContext, _: None) -> list[Any]:
        try:
            first = hydra.receive(ctx, "x", timeout=timedelta(hours=1))
        except hydra.WaitTimeoutError:
            first = "timed out"
        hydra.sleep(ctx, timedelta(hours=1))
        return [first, hydra.receive(ctx, "x")]

    env = make_env()
    env.register(late)
    eid = env.start(late, None)
    env.run_until_idle()
    env.advance(timedelta(hours=1))  # the receive times out, then the sleep starts
    env.send(eid, "x", "late")  # arrives during the sleep: kept for the next receive
    assert env.run_until_complete(eid).output == ["timed out", "late"]


def test_run_until_complete_names_the_topic_nobody_sends(make_env: MakeEnv) -> None:
    env = make_env()
    env.register(collect)
    eid = env.start(collect, 1)
    with pytest.raises(StuckExecutionError, match=r"waits for a message on 'item'"):
        env.run_until_complete(eid)
    with pytest.raises(
        StuckExecutionError,
        match=r"wait for messages: .* waits for a message on 'item' that nobody has sent",
    ):
        env.run_until_all_complete()


@hydra.workflow("pay-on-approval")
def pay_on_approval(ctx: hydra.WorkflowContext, amount: int) -> str:
    decision = hydra.receive(ctx, "decision", result_type=Decision)
    if not decision.approved:
        return "rejected"
    return hydra.step(ctx, "charge", lambda: f"charged {amount}")


def test_crashes_around_a_receive_and_the_step_after_it_deliver_once(
    make_env: MakeEnv,
) -> None:
    report = explore_crashes(
        pay_on_approval,
        5,
        lambda env, eid: _completed_once(env, eid),
        make_env=make_env,
        messages=[("decision", Decision(True))],
    )
    assert report.steps == ["receive-1", "charge"]
    assert len(report.cases) == 1 + 2 * 3


def _completed_once(env: TestEnvironment, eid: str) -> None:
    execution = env.execution(eid)
    assert execution.output == "charged 5", execution.output
    taken = [m for m in env.engine.list_messages(eid) if m.received_by is not None]
    assert len(taken) == 1, taken


# The execution each relay sends to, by namespace (each crash case has its own
# environment, so its own namespace and target); read in a step, so it is checkpointed.
TARGETS: dict[str, str] = {}


@hydra.workflow("relay")
def relay(ctx: hydra.WorkflowContext, _: None) -> str:
    target = hydra.step(ctx, "find-target", lambda: TARGETS[ctx.namespace])
    hydra.send(ctx, target, "item", "from relay")
    hydra.set_event(ctx, "relayed", True)
    return hydra.step(ctx, "after", lambda: "done")


def test_a_send_is_stored_once_whatever_crashes(make_env: MakeEnv) -> None:
    def make() -> TestEnvironment:
        env = make_env()
        env.register(collect)
        TARGETS[env.engine.namespace] = env.start(collect, 1)
        return env

    def check(env: TestEnvironment, eid: str) -> None:
        target = TARGETS[env.engine.namespace]
        assert [m.payload for m in env.engine.list_messages(target)] == ["from relay"]
        assert [m.sender_id for m in env.engine.list_messages(target)] == [eid]
        assert env.engine.get_events(eid) == {"relayed": True}
        env.send(target, "note", "n")
        assert env.run_until_complete(target).output == ["from relay", "n"]

    report = explore_crashes(relay, None, check, make_env=make, also_register=[collect])
    assert report.steps == ["find-target", "send-1", "event-1", "after"]
    assert len(report.cases) == 1 + 4 * 3


def test_a_retried_execution_waits_again_in_a_receive_that_timed_out(make_env: MakeEnv) -> None:
    """engine.retry gives a receive whose deadline passed (and failed the workflow) a new
    wait, as it gives a spent step a fresh budget."""

    @hydra.workflow("strict")
    def strict(ctx: hydra.WorkflowContext, _: None) -> Any:
        return hydra.receive(ctx, "answer", timeout=timedelta(hours=1))

    env = make_env()
    env.register(strict)
    eid = env.start(strict, None)
    failed = env.run_until_complete(eid)
    assert (failed.status, failed.error_type, failed.attempt) == ("failed", "WaitTimeoutError", 1)
    env.engine.retry(eid)
    env.run_until_idle()
    again = env.execution(eid)
    assert again.status == "sleeping"
    assert again.sleep_until == env.clock.now() + timedelta(hours=1)
    env.send(eid, "answer", 42)
    assert env.run_until_complete(eid).output == 42
