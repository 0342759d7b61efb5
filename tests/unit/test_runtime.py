"""``hydra.runtime``: what a run gets from its engine, and the run registry behind
``engine.cancel`` (local runs stop at once), worker wake-ups and ``engine.wait``."""

from __future__ import annotations

import dataclasses
import threading

import pytest

import hydra
from hydra.runtime import PayloadLimit, RunRegistry, Runtime
from hydra.testing import TestEnvironment


class FakeRun:
    def __init__(self, execution_id: str) -> None:
        self.execution_id = execution_id
        self.lost = False

    def mark_lost(self) -> None:
        self.lost = True


def test_the_registry_stops_the_newest_tracked_run_of_an_execution() -> None:
    registry = RunRegistry()
    old, new = FakeRun("e"), FakeRun("e")
    registry.track(old)
    registry.track(new)  # the same execution claimed again: the newer run is the one
    registry.untrack(old)  # an older run ending leaves the newer one tracked
    assert registry.stop("e") and new.lost and not old.lost
    registry.untrack(new)
    assert not registry.stop("e")


def test_wake_callbacks_are_called_until_removed() -> None:
    registry = RunRegistry()
    woken = threading.Event()
    registry.add_wake_callback(woken.set)
    registry.wake_workers()
    assert woken.is_set()
    woken.clear()
    registry.remove_wake_callback(woken.set)
    registry.remove_wake_callback(woken.set)  # twice: harmless
    registry.wake_workers()
    assert not woken.is_set()


def test_a_run_cancelled_midway_stops_and_execute_untracks_it() -> None:
    env = TestEnvironment()
    seen: list[bool] = []

    @hydra.workflow("cancelled-midway")
    def midway(ctx: hydra.WorkflowContext, _: None) -> None:
        eid = ctx.execution_id
        hydra.step(ctx, "cancel", lambda: seen.append(env.engine.cancel(eid)))
        hydra.step(ctx, "never", lambda: seen.append(False))

    env.register(midway)
    eid = env.start("cancelled-midway")
    assert env.run_until_complete(eid).status == "cancelled"
    assert seen == [True]  # the second step never ran
    assert env.step_runs(eid, "never") == 0
    assert not env.engine.runtime.registry.stop(eid)  # no run of it is tracked any more


def test_the_runtime_is_the_engine_s_own_and_frozen() -> None:
    engine = TestEnvironment().engine
    runtime = engine.runtime
    assert isinstance(runtime, Runtime)
    assert (runtime.store, runtime.clock, runtime.marshaller, runtime.observers) == (
        engine.store,
        engine.clock,
        engine.marshaller,
        engine.observers,
    )
    assert runtime.namespace == engine.namespace == "test"
    with pytest.raises(dataclasses.FrozenInstanceError):
        runtime.namespace = "other"  # type: ignore[misc]


def test_the_payload_limit_names_its_source() -> None:
    limit = PayloadLimit(4, "Engine(max_payload_bytes=...)")
    assert limit.check(b"1234", "x") == b"1234"
    with pytest.raises(hydra.PayloadError, match=r"x is 5 bytes encoded, over the limit of 4"):
        limit.check(b"12345", "x")
