"""Cron jobs on the fake clock (``TestEnvironment``), on every store: exact fire times
across DST changes, each slot once among several workers, catch-up policies, failing
handlers, workflow-starting jobs and changed registrations."""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import hydra
from hydra.clock import to_ms
from hydra.store.base import Store
from hydra.testing import FakeClock, TestEnvironment

BERLIN = ZoneInfo("Europe/Berlin")
MakeEnv = Callable[..., TestEnvironment]


@pytest.fixture
def make_env(store_factory: Callable[[], Store]) -> MakeEnv:
    def make(start: datetime | None = None, **options: Any) -> TestEnvironment:
        options.setdefault("namespace", f"cron-{uuid.uuid4().hex[:12]}")
        return TestEnvironment(
            store=store_factory(), clock=FakeClock(start or datetime(2030, 1, 1, tzinfo=UTC)),
            **options,
        )  # fmt: skip

    return make


class Fires:
    """A cron handler that records every call."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[hydra.CronContext] = []
        self.fail = fail

    def __call__(self, ctx: hydra.CronContext) -> None:
        self.calls.append(ctx)
        if self.fail:
            raise RuntimeError(f"boom at {ctx.scheduled_at.isoformat()}")

    @property
    def scheduled(self) -> list[str]:
        return [c.scheduled_at.isoformat() for c in self.calls]

    @property
    def late(self) -> list[timedelta]:
        return [c.fired_at - c.scheduled_at for c in self.calls if c.fired_at != c.scheduled_at]


@hydra.workflow("report")
def report(ctx: hydra.WorkflowContext, req: dict[str, Any]) -> str:
    return hydra.step(ctx, "render", lambda: f"report for {req['day']}")


# -- exact fire times over a week with a DST change ------------------------------------
def test_a_week_across_spring_forward_in_berlin(make_env: MakeEnv) -> None:
    env = make_env(datetime(2030, 3, 28, tzinfo=UTC))
    nightly, half_past = Fires(), Fires()
    env.engine.register_cron("0 2 * * *", "nightly", nightly, timezone="Europe/Berlin")
    env.engine.register_cron("30 * * * *", "half-past", half_past, timezone="Europe/Berlin")

    env.advance(timedelta(days=7))

    assert nightly.scheduled == [
        "2030-03-28T02:00:00+01:00",
        "2030-03-29T02:00:00+01:00",
        "2030-03-30T02:00:00+01:00",
        "2030-03-31T03:00:00+02:00",  # 02:00 does not exist: it runs when the clock jumps
        "2030-04-01T02:00:00+02:00",
        "2030-04-02T02:00:00+02:00",
        "2030-04-03T02:00:00+02:00",
        "2030-04-04T02:00:00+02:00",  # = 00:00 UTC, the end of the week: due and fired
    ]
    # Every hour in real time: 168 runs in 168 hours, none at the missing 02:30.
    start = to_ms(datetime(2030, 3, 28, 0, 30, tzinfo=UTC))
    assert [to_ms(c.scheduled_at) for c in half_past.calls] == [
        start + h * 3_600_000 for h in range(168)
    ]
    around = half_past.scheduled[72:76]
    assert around == [
        "2030-03-31T01:30:00+01:00",
        "2030-03-31T03:30:00+02:00",
        "2030-03-31T04:30:00+02:00",
        "2030-03-31T05:30:00+02:00",
    ]
    assert nightly.late == half_past.late == []  # each fired at its exact slot time
    assert {c.worker_id for c in nightly.calls + half_past.calls} == {"worker-1"}


def test_a_week_across_fall_back_in_berlin(make_env: MakeEnv) -> None:
    env = make_env(datetime(2030, 10, 24, tzinfo=UTC))
    nightly, half_past = Fires(), Fires()
    env.engine.register_cron("0 2 * * *", "nightly", nightly, timezone="Europe/Berlin")
    env.engine.register_cron("30 * * * *", "half-past", half_past, timezone="Europe/Berlin")

    env.advance(timedelta(days=7))

    assert nightly.scheduled == [
        "2030-10-24T02:00:00+02:00",
        "2030-10-25T02:00:00+02:00",
        "2030-10-26T02:00:00+02:00",
        "2030-10-27T02:00:00+02:00",  # once, although 02:00 happens twice that night
        "2030-10-28T02:00:00+01:00",
        "2030-10-29T02:00:00+01:00",
        "2030-10-30T02:00:00+01:00",
    ]
    start = to_ms(datetime(2030, 10, 24, 0, 30, tzinfo=UTC))
    assert [to_ms(c.scheduled_at) for c in half_past.calls] == [
        start + h * 3_600_000 for h in range(168)
    ]
    assert "2030-10-27T02:30:00+02:00" in half_past.scheduled
    assert "2030-10-27T02:30:00+01:00" in half_past.scheduled  # the repeated hour runs twice
    assert nightly.late == half_past.late == []


# -- exactly once -----------------------------------------------------------------------
def test_three_workers_fire_each_slot_once(make_env: MakeEnv) -> None:
    env = make_env(workers=3)
    tick = Fires()
    env.engine.register_cron("* * * * *", "tick", tick)

    env.advance(timedelta(minutes=30))

    slots = Counter(tick.scheduled)
    assert len(slots) == 31 and set(slots.values()) == {1}  # 00:00 through 00:30
    assert tick.scheduled == sorted(tick.scheduled)
    # All three raced for every slot and each won some.
    assert Counter(c.worker_id for c in tick.calls).keys() == {"worker-1", "worker-2", "worker-3"}
    cron_events = [e for e in env.history if e.kind == "cron"]
    assert len(cron_events) == 31
    last = env.store.last_cron_fire(env.engine.namespace, "tick")
    assert last is not None and last.slot_at == to_ms(datetime(2030, 1, 1, 0, 30, tzinfo=UTC))


def test_a_workflow_job_starts_one_execution_per_slot(make_env: MakeEnv) -> None:
    env = make_env(workers=3)
    env.register(report)
    job = env.engine.register_cron(
        "0 6 * * *",
        "daily-report",
        workflow="report",
        payload=lambda slot: {"day": (slot - timedelta(days=1)).date().isoformat()},
        timezone="Europe/Berlin",
    )

    env.advance(timedelta(days=3))

    executions = sorted(env.engine.list_executions(), key=lambda e: e.created_at)
    assert [(e.status, e.output) for e in executions] == [
        ("completed", "report for 2029-12-31"),
        ("completed", "report for 2030-01-01"),
        ("completed", "report for 2030-01-02"),
    ]
    slots = [to_ms(datetime(2030, 1, d, 6, tzinfo=BERLIN)) for d in (1, 2, 3)]
    assert [e.idempotency_key for e in executions] == [job.idempotency_key(s) for s in slots]
    assert [e.created_at for e in executions] == [
        datetime(2030, 1, d, 5, tzinfo=UTC) for d in (1, 2, 3)
    ]
    row = env.store.get_execution(env.engine.namespace, executions[0].id)
    assert row is not None and (row.trigger_type, row.trigger_source) == ("cron", "daily-report")
    last = env.store.last_cron_fire(env.engine.namespace, "daily-report")
    assert last is not None and last.execution_id == executions[-1].id


def test_a_workflow_slot_started_before_a_crash_is_not_started_twice(make_env: MakeEnv) -> None:
    """A worker that started the slot's workflow and died before recording the fire: the
    next worker starts it again with the same idempotency key and gets the same one."""
    env = make_env(datetime(2030, 1, 1, 0, 0, 30, tzinfo=UTC))
    env.register(report)
    job = env.engine.register_cron("* * * * *", "minutely", workflow="report", payload={"day": "x"})
    slot = to_ms(datetime(2030, 1, 1, 0, 1, tzinfo=UTC))
    env.clock.set(datetime(2030, 1, 1, 0, 1, tzinfo=UTC))
    key = job.idempotency_key(slot)
    first = env.engine.start_workflow("report", {"day": "x"}, idempotency_key=key)

    env.run_until_idle()

    assert [e.id for e in env.engine.list_executions()] == [first]
    last = env.store.last_cron_fire(env.engine.namespace, "minutely")
    assert last is not None and (last.slot_at, last.execution_id) == (slot, first)


# -- missed slots -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("catch_up", "expected"),
    [
        ("latest", ["2030-01-01T05:00:00+00:00"]),
        ("all", [f"2030-01-01T0{h}:00:00+00:00" for h in range(1, 6)]),
        ("none", []),
    ],
)
def test_catch_up_after_every_worker_was_down(
    make_env: MakeEnv, catch_up: str, expected: list[str]
) -> None:
    env = make_env(datetime(2030, 1, 1, 0, 0, 1, tzinfo=UTC))
    hourly = Fires()
    env.engine.register_cron("@hourly", "hourly", hourly, catch_up=catch_up)
    env.run_until_idle()
    assert hourly.calls == []  # midnight passed before the job was registered

    env.clock.advance(timedelta(hours=5, minutes=30))  # nobody ran the schedulers meanwhile
    env.run_until_idle()

    assert hourly.scheduled == expected
    assert {c.fired_at for c in hourly.calls} <= {datetime(2030, 1, 1, 5, 30, 1, tzinfo=UTC)}
    env.advance(timedelta(hours=1))  # and on schedule again
    assert hourly.scheduled[len(expected) :] == ["2030-01-01T06:00:00+00:00"]
    assert hourly.calls[-1].fired_at == hourly.calls[-1].scheduled_at


def test_catch_up_none_still_fires_a_slot_noticed_within_the_grace(make_env: MakeEnv) -> None:
    env = make_env(datetime(2030, 1, 1, 0, 0, 1, tzinfo=UTC))
    hourly = Fires()
    env.engine.register_cron("@hourly", "hourly", hourly, catch_up="none")
    env.clock.advance(timedelta(hours=3, seconds=59))  # 03:00:59 is 59 s late: on time
    env.run_until_idle()
    assert hourly.scheduled == ["2030-01-01T03:00:00+00:00"]


def test_catch_up_all_fires_a_long_outage_in_batches(make_env: MakeEnv) -> None:
    env = make_env(datetime(2030, 1, 1, 0, 0, 1, tzinfo=UTC))
    tick = Fires()
    env.engine.register_cron("* * * * *", "tick", tick, catch_up="all")
    env.clock.advance(timedelta(minutes=250))
    assert env.run_cron_due() == 100  # at most MAX_FIRES_PER_TICK per pass
    env.run_until_idle()  # the rest
    assert len(tick.calls) == 250 and len(set(tick.scheduled)) == 250


def test_a_restarted_worker_catches_up_with_the_same_registration(make_env: MakeEnv) -> None:
    """Registering the unchanged job again (a restart) must not forget the missed slots."""
    env = make_env(datetime(2030, 1, 1, 0, 0, 1, tzinfo=UTC))
    env.engine.register_cron("@hourly", "hourly", Fires())
    env.advance(timedelta(hours=1))
    env.clock.advance(timedelta(hours=3))  # every worker down

    restarted = TestEnvironment(store=env.store, clock=env.clock, namespace=env.engine.namespace)
    hourly = Fires()
    restarted.engine.register_cron("@hourly", "hourly", hourly)
    restarted.run_until_idle()
    assert hourly.scheduled == ["2030-01-01T04:00:00+00:00"]


# -- failures -----------------------------------------------------------------------------
def test_a_failing_handler_is_logged_and_counted_and_stops_nothing(
    make_env: MakeEnv, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = hydra.Metrics()
    env = make_env(metrics=metrics)
    boom, fine = Fires(fail=True), Fires()
    env.engine.register_cron("*/10 * * * *", "boom", boom)
    env.engine.register_cron("*/10 * * * *", "fine", fine)

    with caplog.at_level(logging.ERROR, logger="hydra"):
        env.advance(timedelta(hours=1))

    assert len(boom.calls) == len(fine.calls) == 7
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 7
    assert "cron job boom failed for 2030-01-01T00:00:00+00:00: RuntimeError: boom" in (
        errors[0].getMessage()
    )
    assert errors[0].exc_info is not None and errors[0].__dict__["cron_job"] == "boom"
    ns = env.engine.namespace
    sample = metrics.registry.get_sample_value
    assert sample("hydra_cron_failures_total", {"namespace": ns, "cron_job": "boom"}) == 7
    assert sample("hydra_cron_fires_total", {"namespace": ns, "cron_job": "boom"}) == 7
    assert sample("hydra_cron_fires_total", {"namespace": ns, "cron_job": "fine"}) == 7
    assert sample("hydra_cron_failures_total", {"namespace": ns, "cron_job": "fine"}) is None


def test_a_workflow_job_whose_payload_cannot_be_built_fails_only_that_slot(
    make_env: MakeEnv, caplog: pytest.LogCaptureFixture
) -> None:
    env = make_env(datetime(2030, 1, 1, 0, 0, 1, tzinfo=UTC))
    env.register(report)

    def payload(slot: datetime) -> dict[str, str]:
        if slot.hour == 1:
            raise LookupError("no data for 01:00")
        return {"day": slot.isoformat()}

    env.engine.register_cron("@hourly", "hourly", workflow="report", payload=payload)
    with caplog.at_level(logging.ERROR, logger="hydra"):
        env.advance(timedelta(hours=3))
    outputs = sorted(str(e.output) for e in env.engine.list_executions())
    assert outputs == [
        "report for 2030-01-01T02:00:00+00:00",
        "report for 2030-01-01T03:00:00+00:00",
    ]
    assert any("LookupError: no data for 01:00" in r.getMessage() for r in caplog.records)


# -- registration -----------------------------------------------------------------------
def test_a_new_spec_for_a_name_updates_the_stored_job(make_env: MakeEnv) -> None:
    env = make_env(datetime(2030, 1, 1, 0, 0, 1, tzinfo=UTC))
    old, new = Fires(), Fires()
    env.engine.register_cron("0 * * * *", "job", old)
    env.advance(timedelta(hours=2))
    (stored,) = env.engine.list_cron_jobs()
    registered = to_ms(datetime(2030, 1, 1, 0, 0, 1, tzinfo=UTC))
    assert (stored.spec, stored.timezone, stored.updated_at) == ("0 * * * *", None, registered)

    env.engine.register_cron("30 * * * *", "job", new, timezone="Europe/Berlin")
    env.advance(timedelta(hours=2))

    assert old.scheduled == ["2030-01-01T01:00:00+00:00", "2030-01-01T02:00:00+00:00"]
    assert new.scheduled == ["2030-01-01T03:30:00+01:00", "2030-01-01T04:30:00+01:00"]
    (stored,) = env.engine.list_cron_jobs()
    assert (stored.spec, stored.timezone) == ("30 * * * *", "Europe/Berlin")
    assert stored.updated_at == to_ms(datetime(2030, 1, 1, 2, 0, 1, tzinfo=UTC))
    assert stored.next_run_at == to_ms(datetime(2030, 1, 1, 4, 30, tzinfo=UTC))


def test_the_latest_registration_anywhere_sets_the_schedule(make_env: MakeEnv) -> None:
    """Another process registering a new spec for the name: this one follows it from its
    next pass (here: the old spec's next slot, which catches up the new spec's slot)."""
    env = make_env(datetime(2030, 1, 1, 0, 0, 1, tzinfo=UTC))
    here = Fires()
    env.engine.register_cron("0 * * * *", "job", here)
    env.run_until_idle()
    elsewhere = hydra.Engine(env.store, namespace=env.engine.namespace, clock=env.clock)
    elsewhere.register_cron("30 * * * *", "job", Fires())

    env.advance(timedelta(hours=3))

    assert here.scheduled == [
        "2030-01-01T00:30:00+00:00",  # noticed at 01:00 (catch_up="latest")
        "2030-01-01T01:30:00+00:00",
        "2030-01-01T02:30:00+00:00",
    ]


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        (("not a spec", "x", print), {}, ValueError, "invalid cron spec"),
        (("* * * * *", "x", print), {"timezone": "Nowhere/City"}, ValueError, "unknown timezone"),
        (("* * * * *", "", print), {}, ValueError, "cron job name"),
        (("* * * * *", " x", print), {}, ValueError, "whitespace"),
        (("* * * * *", "x", print), {"catch_up": "some"}, ValueError, "catch_up"),
        (("* * * * *", "x"), {}, TypeError, "exactly one"),
        (("* * * * *", "x", print), {"workflow": "report"}, TypeError, "exactly one"),
        (("* * * * *", "x", "print"), {}, TypeError, "callable"),
        (("* * * * *", "x", print), {"payload": 1}, TypeError, "payload"),
        (("* * * * *", "x"), {"workflow": "report", "payload": object()}, ValueError, "encode"),
    ],
)
def test_bad_registrations_raise_and_store_nothing(
    make_env: MakeEnv, args: tuple[Any, ...], kwargs: dict[str, Any], error: type, match: str
) -> None:
    env = make_env()
    with pytest.raises(error, match=match):
        env.engine.register_cron(*args, **kwargs)
    assert env.engine.list_cron_jobs() == []


def test_registration_accepts_a_workflow_object_and_keeps_the_payload(make_env: MakeEnv) -> None:
    env = make_env()
    job = env.engine.register_cron("@daily", "daily", workflow=report, payload={"day": "x"})
    assert job.workflow == "report" and job.spec == "@daily" and job.catch_up == "latest"
    (stored,) = env.engine.list_cron_jobs()
    assert (stored.workflow_name, stored.payload) == ("report", b'{"day":"x"}')


# -- the environment's clock ------------------------------------------------------------
def test_run_until_complete_fires_cron_slots_on_the_way(make_env: MakeEnv) -> None:
    @hydra.workflow("slow")
    def slow(ctx: hydra.WorkflowContext, _: None) -> str:
        hydra.sleep(ctx, timedelta(hours=5))
        return "done"

    env = make_env(datetime(2030, 1, 1, 0, 0, 1, tzinfo=UTC))
    env.register(slow)
    hourly = Fires()
    env.engine.register_cron("@hourly", "hourly", hourly)
    eid = env.start("slow")

    assert env.run_until_complete(eid).status == "completed"

    assert hourly.scheduled == [f"2030-01-01T0{h}:00:00+00:00" for h in range(1, 6)]
    assert hourly.late == []


def test_a_crashed_worker_no_longer_fires(make_env: MakeEnv) -> None:
    @hydra.workflow("crashy")
    def crashy(ctx: hydra.WorkflowContext, _: None) -> None:
        hydra.step(ctx, "only", lambda: None)

    env = make_env(datetime(2030, 1, 1, 0, 0, 1, tzinfo=UTC), workers=2)
    env.register(crashy)
    tick = Fires()
    env.engine.register_cron("*/5 * * * *", "tick", tick)
    env.crash("only", "during")
    env.run_until_complete(env.start("crashy"))
    (dead,) = {e.worker for e in env.history if e.kind == "crash"}

    env.advance(timedelta(hours=1))

    assert len(tick.calls) == 12 and len(set(tick.scheduled)) == 12
    assert dead not in {c.worker_id for c in tick.calls}
    assert dead not in env.workers


def test_a_store_error_is_retried_a_second_later(
    make_env: MakeEnv, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    env = make_env(datetime(2030, 1, 1, 0, 0, 1, tzinfo=UTC))
    tick = Fires()
    env.engine.register_cron("* * * * *", "tick", tick)
    real = env.store.last_cron_fire
    failed: list[datetime] = []

    def flaky(namespace: str, job_name: str) -> Any:
        if env.clock.now().minute == 1 and not failed:  # once, at the 00:01 slot
            failed.append(env.clock.now())
            raise ConnectionError("database restarting")
        return real(namespace, job_name)

    monkeypatch.setattr(env.store, "last_cron_fire", flaky)
    with caplog.at_level(logging.WARNING, logger="hydra"):
        env.advance(timedelta(minutes=1))
    assert tick.scheduled == ["2030-01-01T00:01:00+00:00"]
    assert failed == [datetime(2030, 1, 1, 0, 1, tzinfo=UTC)]
    assert tick.late == [timedelta(seconds=1)]  # retried ERROR_RETRY_MS later
    assert "scheduling failed (ConnectionError: database restarting)" in caplog.text


def test_a_store_error_on_a_job_s_first_look_is_retried_a_second_later(
    make_env: MakeEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = make_env(datetime(2030, 1, 1, 0, 0, 1, tzinfo=UTC))
    env.engine.register_cron("* * * * *", "tick", Fires())

    def down(namespace: str, job_name: str) -> Any:
        raise ConnectionError("database down")

    monkeypatch.setattr(env.store, "last_cron_fire", down)
    env.run_until_idle()
    scheduler = hydra.scheduler.CronScheduler  # the one simulated worker's
    assert isinstance(env._schedulers["worker-1"], scheduler)
    assert env._schedulers["worker-1"].next_due_ms() == to_ms(env.clock.now()) + 1_000
