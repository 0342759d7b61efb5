"""Crash injection, zombies (paused workers), readable histories and determinism.

``crash(step, phase)`` kills the simulated worker that reaches that point: its lease stays
held until it expires, then another worker takes over, using one workflow attempt.
Every scenario runs on every store (memory, SQLite, PostgreSQL, MySQL).
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import hydra
from hydra.runner import Outcome
from hydra.store.base import Store
from hydra.testing import PHASES, Phase, SimulatedCrash, TestEnvironment
from hydra.testing.memory import MemoryStore

MakeEnv = Callable[..., TestEnvironment]
STEPS = ("charge", "reserve", "ship")
LEASE = timedelta(seconds=60)


@pytest.fixture
def make_env(store_factory: Callable[[], Store]) -> MakeEnv:
    """A fresh environment on the backend under test (unique namespace and ids)."""

    def make(**options: Any) -> TestEnvironment:
        options.setdefault("namespace", f"t-{uuid.uuid4().hex[:10]}")
        options.setdefault("seed", uuid.uuid4().int)
        return TestEnvironment(store=store_factory(), **options)

    return make


def three_steps(ledger: Counter[str]) -> hydra.Workflow[Any]:
    """charge -> reserve -> ship; each step body adds its name to ``ledger``."""

    @hydra.workflow("three-steps")
    def wf(ctx: hydra.WorkflowContext, amount: int) -> dict[str, Any]:
        def effect(name: str, value: Any) -> Callable[[], Any]:
            def body() -> Any:
                ledger[name] += 1
                return value

            return body

        charged = hydra.step(ctx, "charge", effect("charge", amount * 2))
        reservation = hydra.step(ctx, "reserve", effect("reserve", f"r-{amount}"))
        label = hydra.step(ctx, "ship", effect("ship", [charged, reservation]))
        return {"charged": charged, "label": label}

    return wf


EXPECTED_OUTPUT = {"charged": 42, "label": [42, "r-21"]}


# -- one crash at each point ------------------------------------------------------------


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("crashed", STEPS)
def test_a_crash_at_any_point_recovers_with_the_step_at_least_once(
    make_env: MakeEnv, crashed: str, phase: Phase
) -> None:
    env = make_env()
    t0 = env.clock.now()
    ledger: Counter[str] = Counter()
    wf = env.register(three_steps(ledger))
    eid = env.start(wf, 21, max_attempts=2)
    env.crash(crashed, phase)

    ex = env.run_until_complete(eid)
    assert (ex.status, ex.output, ex.attempt) == ("completed", EXPECTED_OUTPUT, 2)
    assert ex.completed_at == t0 + LEASE  # the takeover came exactly when the lease expired
    expected_runs = {s: 1 for s in STEPS}
    if phase != "before":  # entered by the dead worker, then again by its replacement
        expected_runs[crashed] = 2
    assert {s: env.step_runs(eid, s) for s in STEPS} == expected_runs
    # Every checkpoint is from a single successful attempt: the crashed one left no trace.
    assert [(s.name, s.status, s.attempts) for s in ex.steps] == [
        (s, "completed", 1) for s in STEPS
    ]
    kinds = [e.kind for e in env.history if e.kind in ("crash", "spawn", "takeover")]
    assert kinds == ["crash", "spawn", "takeover"]
    assert env.workers == ["worker-2"]


@pytest.mark.parametrize("phase", ["before", "after"])
def test_the_side_effect_ledger_of_a_crash(make_env: MakeEnv, phase: Phase) -> None:
    """``before``: the body never ran; ``after``: it ran and its result was lost.
    (``during``: see the next test.)"""
    env = make_env()
    ledger: Counter[str] = Counter()
    wf = env.register(three_steps(ledger))
    env.crash("reserve", phase)
    env.run_until_complete(env.start(wf, 21, max_attempts=2))
    expected = {"before": 1, "after": 2}[phase]
    assert ledger == {"charge": 1, "reserve": expected, "ship": 1}


def test_a_crash_during_a_step_has_entered_its_body(make_env: MakeEnv) -> None:
    env = make_env()
    ledger: Counter[str] = Counter()
    wf = env.register(three_steps(ledger))
    env.crash("reserve", "during")
    eid = env.start(wf, 21, max_attempts=2)
    env.run_until_complete(eid)
    assert ledger["reserve"] == env.step_runs(eid, "reserve") == 2


def test_a_crash_on_a_retried_step_attempt(make_env: MakeEnv) -> None:
    env = make_env()
    t0 = env.clock.now()
    entries: list[datetime] = []

    def api() -> str:
        entries.append(env.clock.now())
        if len(entries) == 1:
            raise ConnectionError("blip")
        return "ok"

    @hydra.workflow("retried-crash")
    def wf(ctx: hydra.WorkflowContext, req: None) -> str:
        hydra.step(ctx, "first", lambda: "1")
        return hydra.step(ctx, "api", api, retry=hydra.RetryPolicy(max_attempts=3))

    env.register(wf)
    eid = env.start(wf, None, max_attempts=2)
    env.run_until_idle()  # attempt 1 of the step failed; the retry is due in 1 s
    ex = env.execution(eid)
    assert (ex.status, ex.sleep_until) == ("sleeping", t0 + timedelta(seconds=1))
    env.crash("api", "after")  # kill the worker running the step's second attempt

    ex = env.run_until_complete(eid)
    assert (ex.status, ex.output, ex.attempt) == ("completed", "ok", 2)
    assert entries == [t0, t0 + timedelta(seconds=1), t0 + timedelta(seconds=61)]
    step = ex.step("api")
    # Attempt 1 failed (recorded), attempt 2 crashed (no trace), attempt 2 again succeeded.
    assert step is not None and (step.status, step.attempts) == ("completed", 2)
    assert env.step_runs(eid, "api") == 3
    assert env.step_runs(eid, "first") == 1
    crash = [e for e in env.history if e.kind == "crash"]
    assert [(e.at, e.detail) for e in crash] == [(t0 + timedelta(seconds=1), "after step 'api'")]


def test_two_workers_die_and_the_third_completes(make_env: MakeEnv) -> None:
    env = make_env()
    t0 = env.clock.now()
    ledger: Counter[str] = Counter()
    wf = env.register(three_steps(ledger))
    eid = env.start(wf, 21, max_attempts=3)
    env.crash("reserve", "during", execution_id=eid, times=2)

    ex = env.run_until_complete(eid)
    assert (ex.status, ex.output, ex.attempt) == ("completed", EXPECTED_OUTPUT, 3)
    assert ex.completed_at == t0 + 2 * LEASE
    assert env.step_runs(eid, "reserve") == 3
    assert (env.step_runs(eid, "charge"), env.step_runs(eid, "ship")) == (1, 1)
    assert env.workers == ["worker-3"]
    crashes = [(e.worker, e.at) for e in env.history if e.kind == "crash"]
    assert crashes == [("worker-1", t0), ("worker-2", t0 + LEASE)]
    takeovers = [(e.worker, e.detail) for e in env.history if e.kind == "takeover"]
    assert takeovers == [
        ("worker-2", "three-steps attempt 2"),
        ("worker-3", "three-steps attempt 3"),
    ]


def test_crashes_beyond_max_attempts_fail_with_lease_expired(make_env: MakeEnv) -> None:
    env = make_env()
    t0 = env.clock.now()
    ledger: Counter[str] = Counter()
    wf = env.register(three_steps(ledger))
    eid = env.start(wf, 21, max_attempts=2)
    env.crash("ship", "after", times=5)

    ex = env.run_until_complete(eid)
    assert (ex.status, ex.error_type, ex.attempt) == ("failed", "LeaseExpiredError", 3)
    assert "running attempt 2" in (ex.error_message or "")
    assert ex.completed_at == t0 + 2 * LEASE
    assert env.step_runs(eid, "ship") == 2  # no worker got to run it a third time
    assert [s.name for s in ex.steps] == ["charge", "reserve"]


def test_a_crash_plan_for_another_execution_does_not_fire(make_env: MakeEnv) -> None:
    env = make_env()
    ledger: Counter[str] = Counter()
    wf = env.register(three_steps(ledger))
    spared = env.start(wf, 21)
    target = env.start(wf, 1)
    env.crash("charge", "after", execution_id=target)
    env.run_until_all_complete()
    assert (env.execution(spared).attempt, env.execution(target).attempt) == (1, 2)
    assert (env.step_runs(spared, "charge"), env.step_runs(target, "charge")) == (1, 2)


def test_simulated_crashes_cannot_be_caught_by_workflow_code(make_env: MakeEnv) -> None:
    env = make_env()
    caught: list[str] = []

    @hydra.workflow("catch-all")
    def wf(ctx: hydra.WorkflowContext, req: None) -> str:
        try:
            return hydra.step(ctx, "risky", lambda: "ok")
        except Exception as exc:  # a SimulatedCrash is a BaseException: not caught here
            caught.append(type(exc).__name__)
            raise

    env.register(wf)
    env.crash("risky", "after")
    ex = env.run_until_complete(env.start(wf, None))
    assert (ex.status, ex.output, caught) == ("completed", "ok", [])
    assert issubclass(SimulatedCrash, BaseException)
    assert not issubclass(SimulatedCrash, Exception)


def test_crash_arguments_are_checked(make_env: MakeEnv) -> None:
    env = make_env()
    with pytest.raises(ValueError, match="phase"):
        env.crash("x", "midway")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="times"):
        env.crash("x", "during", times=0)
    with pytest.raises(ValueError, match="workers"):
        TestEnvironment(workers=0)


# -- zombies ------------------------------------------------------------------------------


def test_a_paused_worker_is_taken_over_and_fenced_out_when_it_resumes(
    make_env: MakeEnv,
) -> None:
    env = make_env(workers=2)
    t0 = env.clock.now()
    ledger: Counter[str] = Counter()
    wf = env.register(three_steps(ledger))
    eid = env.start(wf, 21)
    env.pause("reserve", "during")

    done = env.run_until_complete(eid)
    assert (done.status, done.output, done.attempt) == ("completed", EXPECTED_OUTPUT, 2)
    assert done.completed_at == t0 + LEASE
    assert env.workers == ["worker-1", "worker-2"]  # paused, not dead
    takeover = [(e.at, e.worker) for e in env.history if e.kind == "takeover"]
    assert takeover == [(t0 + LEASE, "worker-2")]

    env.clock.advance(timedelta(minutes=5))  # it wakes up later still
    assert env.resume() == [Outcome.LOST]
    after = env.execution(eid)
    assert after == done  # status, output, steps, completed_at: nothing the zombie wrote landed
    assert (after.status, after.output, after.completed_at, after.steps) == (
        done.status,
        done.output,
        done.completed_at,
        done.steps,
    )
    lost = [(e.worker, e.execution_id) for e in env.history if e.kind == "lost"]
    assert lost == [("worker-1", eid)]
    # The zombie ran reserve's body when it woke up; its checkpoint was fenced out.
    assert ledger == {"charge": 1, "reserve": 2, "ship": 1}
    assert env.resume() == []  # nobody is paused any more


def test_a_paused_worker_does_not_block_others(make_env: MakeEnv) -> None:
    env = make_env(workers=1)
    ledger: Counter[str] = Counter()
    wf = env.register(three_steps(ledger))
    frozen = env.start(wf, 21)
    env.pause("charge", "before", execution_id=frozen)
    env.run_until_idle()
    other = env.start(wf, 5)
    assert env.run_until_complete(other).status == "completed"  # by a spawned worker-2
    assert [e.worker for e in env.history if e.kind == "spawn"] == ["worker-2"]
    assert env.execution(frozen).status == "running"
    assert env.run_until_complete(frozen).attempt == 2
    assert env.resume() == [Outcome.LOST]
    # The takeover's and the other one's: frozen woke up past its lease (on the clock its
    # lease guard reads) right before charge's body, re-validated its lease, found it taken
    # over and stopped without entering the body (before issue 9 it ran a zombie body).
    assert ledger["charge"] == 2
    lost = [e for e in env.history if e.kind == "lost" and e.execution_id == frozen]
    assert [e.worker for e in lost] == ["worker-1"]


# -- histories ------------------------------------------------------------------------------


def test_the_history_reads_as_a_story(make_env: MakeEnv) -> None:
    env = make_env()
    ledger: Counter[str] = Counter()
    wf = env.register(three_steps(ledger))
    eid = env.start(wf, 21)
    env.crash("reserve", "after")
    env.run_until_complete(eid)
    text = env.format_history()
    lines = text.splitlines()
    assert len(lines) == len(env.history)
    short = eid[:8]

    def line(kind: str) -> str:
        found = [ln for ln in lines if f" {kind} " in ln or ln.rstrip().endswith(f" {kind}")]
        assert len(found) == 1, (kind, text)
        return found[0]

    assert line("crash").startswith("2030-01-01 00:00:00.000  worker-1")
    assert line("crash").endswith(f"{short}  crash      after step 'reserve'")
    assert line("spawn").endswith("worker-2  -         spawn      replacement worker started")
    assert line("takeover").startswith("2030-01-01 00:01:00.000  worker-2")
    assert line("takeover").endswith(f"{short}  takeover   three-steps attempt 2")
    assert lines[0].endswith(f"-         {short}  start      three-steps")
    assert lines[-1].endswith(f"worker-2  {short}  completed")
    kinds = [e.kind for e in env.history]
    assert kinds.index("crash") < kinds.index("spawn") < kinds.index("takeover")

    other = env.start(wf, 1)
    env.run_until_complete(other)
    mine = env.format_history(eid)
    assert other[:8] not in mine and mine in env.format_history()


def _scenario(seed: int) -> TestEnvironment:
    env = TestEnvironment(seed=seed, workers=2)
    ledger: Counter[str] = Counter()
    wf = env.register(three_steps(ledger))
    first = env.start(wf, 21, max_attempts=3)
    env.start(wf, 1)
    env.crash("reserve", "during", execution_id=first, times=2)
    env.crash("charge", "after")
    env.run_until_all_complete()
    return env


def test_the_same_seed_gives_the_same_history() -> None:
    # Memory stores: two environments with one seed make the same ids, which would
    # collide on a shared SQL database (see test_env_behaviour).
    one, two = _scenario(seed=7), _scenario(seed=7)
    assert one.format_history() == two.format_history()
    assert [e.execution_id for e in one.history] == [e.execution_id for e in two.history]
    assert "crash" in one.format_history()

    other = _scenario(seed=8)
    ids = {e.execution_id for e in one.history} - {None}
    other_ids = {e.execution_id for e in other.history} - {None}
    assert len(ids) == len(other_ids) == 2
    assert ids.isdisjoint(other_ids)
    assert one.format_history() != other.format_history()


def test_every_store_tells_the_same_story_as_the_memory_store(
    store_factory: Callable[[], Store],
) -> None:
    """Fencing, crashes and takeovers do not depend on the backend: with the same seed,
    a SQL store gives the very history a MemoryStore gives."""
    seed = uuid.uuid4().int
    namespace = f"t-{uuid.uuid4().hex[:10]}"  # ids derive from seed and namespace

    def story(store: Store) -> str:
        env = TestEnvironment(store=store, namespace=namespace, seed=seed)
        ledger: Counter[str] = Counter()
        wf = env.register(three_steps(ledger))
        env.crash("charge", "after")
        env.crash("reserve", "during", times=2)
        env.crash("ship", "before")
        for n in range(4):  # one second apart: no two executions are ever due together
            env.start(wf, n, max_attempts=3)
            env.run_until_idle()
            env.clock.advance(timedelta(seconds=1))
        env.run_until_all_complete()
        history = env.format_history()
        assert history.count(" crash ") == 4
        return history

    assert story(store_factory()) == story(MemoryStore())


#: a seed whose first execution ids are not in ascending order (and not 0, which other
#: environments on the shared test databases use)
UNSORTED_SEED = 0xC1A1_0F_5EED


def test_executions_due_together_are_claimed_in_the_same_order_on_every_store(
    request: pytest.FixtureRequest, store_factory: Callable[[], Store]
) -> None:
    # Each backend's database is used by this test once per session, so a fixed namespace
    # is safe, and with a fixed seed it fixes the ids (chosen so they are not sorted).
    def claim_order(store: Store) -> list[str | None]:
        env = TestEnvironment(store=store, namespace="claim-order", seed=UNSORTED_SEED)
        wf = env.register(three_steps(Counter()))
        started = [env.start(wf, n) for n in range(6)]
        assert started != sorted(started)
        env.run_until_all_complete()
        return [e.execution_id for e in env.history if e.kind == "claim"]

    assert claim_order(store_factory()) == claim_order(MemoryStore())


# -- frozen time ------------------------------------------------------------------------------


def test_freeze_time_makes_datetime_now_the_fake_clock(make_env: MakeEnv) -> None:
    env = make_env(freeze_time=True)
    seen: list[tuple[datetime, datetime, float]] = []

    def stamp() -> str:
        seen.append((datetime.now(UTC), env.clock.now(), time.time()))
        return datetime.now(UTC).isoformat()

    @hydra.workflow("frozen")
    def wf(ctx: hydra.WorkflowContext, req: None) -> list[str]:
        first = hydra.step(ctx, "first", stamp)
        hydra.sleep(ctx, timedelta(days=3))
        return [first, hydra.step(ctx, "second", stamp)]

    env.register(wf)
    ex = env.run_until_complete(env.start(wf, None))
    t0 = datetime(2030, 1, 1, tzinfo=UTC)
    assert [(now, clock) for now, clock, _ in seen] == [
        (t0, t0),
        (t0 + timedelta(days=3), t0 + timedelta(days=3)),
    ]
    assert [stamp_s for _, _, stamp_s in seen] == [
        t0.timestamp(),
        (t0 + timedelta(days=3)).timestamp(),
    ]
    assert ex.output == [t0.isoformat(), (t0 + timedelta(days=3)).isoformat()]
    assert datetime.now(UTC).year < 2030  # only runs are frozen


def test_time_is_not_frozen_by_default() -> None:
    env = TestEnvironment(store=MemoryStore())
    seen: list[datetime] = []

    @hydra.workflow("unfrozen")
    def wf(ctx: hydra.WorkflowContext, req: None) -> None:
        hydra.step(ctx, "s", lambda: seen.append(datetime.now(UTC)))

    env.register(wf)
    env.run_until_complete(env.start(wf, None))
    assert seen and seen[0] != env.clock.now()


class TwoSteps(hydra.Workflow[None]):
    name = "two-steps"

    def run(self, ctx: hydra.WorkflowContext, _: None) -> str:
        hydra.step(ctx, "capture", lambda: 1)
        hydra.step(ctx, "notify", lambda: 2)
        return "done"


def test_an_unfired_crash_is_reported_with_the_steps_reached() -> None:
    from hydra.testing import UnfiredPlanError

    env = TestEnvironment()
    env.register(TwoSteps())
    eid = env.start("two-steps")
    env.crash(step="captur", phase="during")
    env.run_until_complete(eid)
    with pytest.raises(UnfiredPlanError) as caught:
        env.assert_plans_fired()
    message = str(caught.value)
    assert "crash(step='captur', phase='during') never fired" in message
    assert f"steps reached by {eid}: 'capture', 'notify'" in message
    assert "did you mean step='capture' instead of 'captur'?" in message


def test_a_crash_that_fired_fewer_times_than_asked_is_reported() -> None:
    from hydra.testing import UnfiredPlanError

    # Two attempts, so the third crash has no run left to kill.
    with pytest.raises(UnfiredPlanError, match=r"times=3\) fired 2 of 3 times"):  # noqa: SIM117
        with TestEnvironment() as env:
            env.register(TwoSteps())
            eid = env.start("two-steps", max_attempts=2)
            env.crash(step="notify", phase="before", times=3)
            assert env.run_until_complete(eid).status == "failed"


def test_the_context_manager_passes_when_every_plan_fired_and_on_errors_stays_out() -> None:
    with TestEnvironment() as env:
        env.register(TwoSteps())
        eid = env.start("two-steps")
        env.crash(step="notify", phase="after")
        assert env.run_until_complete(eid).status == "completed"
    # An exception in the block is the test's failure: the unfired plan is not added on top.
    with pytest.raises(KeyError), TestEnvironment() as env:
        env.pause(step="missing")
        raise KeyError("the test's own failure")
