"""``ctx.logger`` is replay-aware: silent while a run re-executes code an earlier run
already executed (up to the last stored checkpoint), live from there on. hydra's own lines
are not affected. Runs on every store (memory, SQLite, PostgreSQL, MariaDB)."""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

import hydra
from hydra.store.base import Store
from hydra.testing import TestEnvironment

MakeEnv = Callable[..., TestEnvironment]
WAIT = 30  # seconds: a bound against hangs, not an expectation


class Collect(logging.Handler):
    """Keeps every record it is handed."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self, logger: str = "hydra.workflow") -> Counter[str]:
        return Counter(r.getMessage() for r in self.records if r.name == logger)


@pytest.fixture
def logged() -> Iterator[Collect]:
    """Records of the ``hydra`` logger and its children, at every level."""
    handler = Collect()
    logger = logging.getLogger("hydra")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


@pytest.fixture
def make_env(store_factory: Callable[[], Store]) -> MakeEnv:
    def make(**options: Any) -> TestEnvironment:
        options.setdefault("namespace", f"t-{uuid.uuid4().hex[:10]}")
        return TestEnvironment(store=store_factory(), **options)

    return make


@hydra.workflow("sleepy-logger")
def sleepy_logger(ctx: hydra.WorkflowContext, name: str) -> str:
    ctx.logger.info("before the sleep of %s", name)
    hydra.sleep(ctx, timedelta(hours=1))
    ctx.logger.info("after the sleep")

    def greet() -> str:
        ctx.logger.info("inside greet")
        return f"hi {name}"

    greeting = hydra.step(ctx, "greet", greet)
    hydra.sleep(ctx, timedelta(hours=1))
    ctx.logger.info("done: %s", greeting)
    return greeting


def test_each_line_appears_once_across_sleeps(make_env: MakeEnv, logged: Collect) -> None:
    env = make_env()
    env.register(sleepy_logger)
    eid = env.start("sleepy-logger", "ada")

    assert env.run_until_complete(eid).status == "completed"

    assert logged.lines() == {
        "before the sleep of ada": 1,
        "after the sleep": 1,
        "inside greet": 1,
        "done: hi ada": 1,
    }
    runs = [e for e in env.history if e.kind == "claim" and e.execution_id == eid]
    assert len(runs) == 3  # three runs, two of them replays: lines still once each


def test_records_carry_the_execution_fields_and_the_workflow_logger_name(
    make_env: MakeEnv, logged: Collect
) -> None:
    env = make_env()
    env.register(sleepy_logger)
    eid = env.start("sleepy-logger", "ada")
    env.run_until_complete(eid)

    mine = [r for r in logged.records if r.name == "hydra.workflow"]
    assert {(r.execution_id, r.workflow_name) for r in mine} == {(eid, "sleepy-logger")}  # type: ignore[attr-defined]
    inside = next(r for r in mine if r.getMessage() == "inside greet")
    assert inside.step_name == "greet"  # type: ignore[attr-defined]


def test_hydra_s_own_lines_are_not_muted_during_replay(make_env: MakeEnv, logged: Collect) -> None:
    """A step failing on its retry run (a replay up to it) is still reported each time."""
    attempts = Counter[str]()

    @hydra.workflow("flaky-after-sleep")
    def flaky(ctx: hydra.WorkflowContext, _: None) -> str:
        ctx.logger.info("starting")
        hydra.sleep(ctx, timedelta(minutes=5))

        def body() -> str:
            attempts["flaky"] += 1
            if attempts["flaky"] < 3:
                raise ConnectionError(f"try {attempts['flaky']}")
            return "ok"

        policy = hydra.RetryPolicy(max_attempts=3, initial_backoff=timedelta(minutes=1))
        return hydra.step(ctx, "flaky", body, retry=policy)

    env = make_env()
    env.register(flaky)
    eid = env.start("flaky-after-sleep", None)
    assert env.run_until_complete(eid).status == "completed"

    assert logged.lines() == {"starting": 1}
    retries = [m for m in logged.lines("hydra") if m.startswith("step flaky attempt")]
    assert len(retries) == 2, logged.lines("hydra")


def test_an_async_workflow_logs_each_line_once(make_env: MakeEnv, logged: Collect) -> None:
    @hydra.workflow("async-sleepy")
    async def async_sleepy(ctx: hydra.AsyncWorkflowContext, _: None) -> str:
        ctx.logger.info("before")
        await hydra.sleep(ctx, timedelta(minutes=10))
        ctx.logger.info("after")
        return await hydra.step(ctx, "s", lambda: "ok")

    env = make_env()
    env.register(async_sleepy)
    assert env.run_until_complete(env.start("async-sleepy", None)).status == "completed"
    assert logged.lines() == {"before": 1, "after": 1}


@hydra.workflow("crashy-logger")
def crashy_logger(ctx: hydra.WorkflowContext, _: None) -> str:
    ctx.logger.info("start")
    hydra.step(ctx, "a", lambda: "a")
    ctx.logger.info("after a")
    hydra.step(ctx, "b", lambda: "b")
    ctx.logger.info("after b")
    hydra.step(ctx, "c", lambda: "c")
    ctx.logger.info("end")
    return "done"


@pytest.mark.parametrize("phase", ["before", "during", "after"])
def test_a_crash_does_not_repeat_the_replayed_lines(
    make_env: MakeEnv, logged: Collect, phase: Any
) -> None:
    """A worker dies at step b; the next one replays up to a's checkpoint silently. The
    line between a (the last checkpoint) and b ran in the crashed run and runs again: it
    is logged again, as documented; nothing before a is."""
    env = make_env()
    env.register(crashy_logger)
    eid = env.start("crashy-logger", None)
    env.crash(step="b", phase=phase)

    assert env.run_until_complete(eid).status == "completed"

    assert logged.lines() == {"start": 1, "after a": 2, "after b": 1, "end": 1}


def test_a_crash_after_a_sleep_repeats_nothing_before_it(
    make_env: MakeEnv, logged: Collect
) -> None:
    env = make_env()
    env.register(sleepy_logger)
    eid = env.start("sleepy-logger", "bo")
    env.crash(step="greet", phase="during")

    assert env.run_until_complete(eid).status == "completed"

    # "after the sleep" is after the last checkpoint (the sleep) when greet crashes.
    assert logged.lines() == {
        "before the sleep of bo": 1,
        "after the sleep": 2,
        "inside greet": 2,  # the body ran, then the worker died: it runs again
        "done: hi bo": 1,
    }


def test_a_workflow_retry_replays_silently_up_to_its_last_checkpoint(
    make_env: MakeEnv, logged: Collect
) -> None:
    failures = Counter[str]()

    @hydra.workflow("retried")
    def retried(ctx: hydra.WorkflowContext, _: None) -> str:
        ctx.logger.info("begin")
        hydra.step(ctx, "one", lambda: 1)
        ctx.logger.info("after one")
        if failures["wf"] < 1:
            failures["wf"] += 1
            raise RuntimeError("the first attempt fails after step one")
        hydra.step(ctx, "two", lambda: 2)
        ctx.logger.info("after two")
        return "ok"

    env = make_env()
    env.register(retried)
    eid = env.start("retried", None, retry_backoff=timedelta(seconds=1))
    assert env.run_until_complete(eid).status == "completed"

    assert logged.lines() == {"begin": 1, "after one": 2, "after two": 1}


def test_is_replaying_and_is_enabled_for_follow_the_replay(make_env: MakeEnv) -> None:
    seen: list[tuple[str, bool, bool]] = []

    @hydra.workflow("observed")
    def observed(ctx: hydra.WorkflowContext, _: None) -> None:
        def note(where: str) -> None:
            seen.append((where, ctx.is_replaying, ctx.logger.isEnabledFor(logging.CRITICAL)))

        note("top")
        hydra.sleep(ctx, timedelta(minutes=1))
        note("after sleep")
        hydra.step(ctx, "s", lambda: note("in step"))
        note("end")

    env = make_env()
    env.register(observed)
    eid = env.start("observed", None)
    env.run_until_complete(eid)

    assert seen == [
        ("top", False, True),  # the first run has no checkpoints: live
        ("top", True, False),  # the second replays up to the sleep
        ("after sleep", False, True),
        ("in step", False, True),
        ("end", False, True),
    ]


def test_changed_code_that_skips_a_stored_step_is_parked_without_logging(
    make_env: MakeEnv, logged: Collect
) -> None:
    """Code that no longer reaches a stored checkpoint is a mismatch with the history
    (issue 14): the run is parked at the first checkpoint that differs, having logged
    nothing (it was still replaying); the old code back, it resumes and logs live."""
    version = {"n": 1}

    @hydra.workflow("changing")
    def changing(ctx: hydra.WorkflowContext, _: None) -> None:
        if version["n"] == 1:
            hydra.step(ctx, "old", lambda: None)
        hydra.sleep(ctx, timedelta(minutes=1), name="nap")
        ctx.logger.info("after the nap")
        hydra.step(ctx, "new", lambda: ctx.logger.info("in new"))
        ctx.logger.info("end")

    env = make_env()
    env.register(changing)
    eid = env.start("changing", None)
    env.run_until_idle()  # runs "old", then sleeps
    version["n"] = 2  # deployed: "old" is gone
    env.advance(timedelta(minutes=1))
    parked = env.execution(eid)
    assert (parked.status, parked.error_type, parked.attempt) == (
        "pending",
        "NonDeterminismError",
        1,
    )
    assert logged.lines() == {}
    version["n"] = 1  # the fix deployed
    env.engine.retry(eid)
    assert env.run_until_complete(eid).status == "completed"
    assert logged.lines() == {"after the nap": 1, "in new": 1, "end": 1}


def test_a_threaded_worker_logs_each_line_once(
    sql_store_factory: Callable[[], Store], logged: Collect
) -> None:
    """The same through ``hydra.Worker`` threads on a SQL store (real time, short sleeps)."""

    @hydra.workflow("napper")
    def napper(ctx: hydra.WorkflowContext, _: None) -> str:
        ctx.logger.info("before")
        hydra.sleep(ctx, timedelta(milliseconds=50))
        ctx.logger.info("between")
        hydra.sleep(ctx, timedelta(milliseconds=50))
        ctx.logger.info("after")
        return "ok"

    engine = hydra.Engine(sql_store_factory(), namespace=f"t-{uuid.uuid4().hex[:10]}")
    runner = hydra.Worker(engine, poll_interval=0.02, heartbeat_interval=0.5, claim_timeout=5)
    runner.register(napper)
    runner.start()
    try:
        eid = engine.start_workflow("napper", None)
        assert engine.wait(eid, timeout=WAIT).status == "completed"
    finally:
        runner.shutdown(timeout=5)
    assert logged.lines() == {"before": 1, "between": 1, "after": 1}
