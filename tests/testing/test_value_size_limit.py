"""Values over the size limit raise ``PayloadError`` at once, with nothing stored.

Old bug: on MariaDB a payload or step result over the server's ``max_allowed_packet``
hung 30 s in reconnect retries and then failed with "MySQL server has gone away" (the
step body ran 3 times over 96 s); other backends stored any size. Now every backend has
the same documented limit, ``Engine(max_payload_bytes=8 MiB)``, lowered where the store
advertises a smaller one (``SQLStore.max_value_bytes`` on MySQL/MariaDB).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

import hydra
from hydra.store.base import Store
from hydra.testing import TestEnvironment
from hydra.testing.memory import MemoryStore

MakeEnv = Callable[..., TestEnvironment]
MiB = 1024 * 1024
DEFAULT = 8 * MiB


@pytest.fixture
def make_env(store_factory: Callable[[], Store]) -> MakeEnv:
    def make(**options: Any) -> TestEnvironment:
        options.setdefault("namespace", f"s-{uuid.uuid4().hex[:10]}")
        options.setdefault("seed", uuid.uuid4().int)
        return TestEnvironment(store=store_factory(), **options)

    return make


def limit_of(engine: hydra.Engine) -> int:
    """The limit that applies (old code: none, so the documented default)."""
    return int(getattr(engine, "payload_limit", DEFAULT))


def encoded(size: int, worst: bool = False) -> str:
    """A str whose JSON encoding is exactly ``size`` bytes (``worst``: every byte a
    backslash, which MySQL's string literals escape, doubling the statement)."""
    if worst:
        return "\\" * ((size - 2) // 2)
    return "x" * (size - 2)


def test_the_default_limit_and_its_validation() -> None:
    engine = hydra.Engine(MemoryStore())
    assert engine.max_payload_bytes == DEFAULT
    assert engine.payload_limit == DEFAULT
    assert hydra.Engine(MemoryStore(), max_payload_bytes=1000).payload_limit == 1000
    for bad in (0, -1, True, 1.5, "8M", 2**31):
        with pytest.raises((ValueError, TypeError), match="max_payload_bytes"):
            hydra.Engine(MemoryStore(), max_payload_bytes=bad)  # type: ignore[arg-type]


def test_stores_advertise_their_own_limit(store_factory: Callable[[], Store]) -> None:
    store = store_factory()
    limit = store.max_value_bytes
    if store_factory.backend == "mysql":  # type: ignore[attr-defined]
        assert isinstance(limit, int) and 0 < limit < 16 * MiB
    else:
        assert limit is None


def test_oversized_start_payload_raises_at_once_and_stores_nothing(make_env: MakeEnv) -> None:
    env = make_env()
    limit = limit_of(env.engine)
    start = time.monotonic()
    with pytest.raises(hydra.PayloadError) as info:
        env.engine.start_workflow("wf", encoded(limit + 1))
    assert time.monotonic() - start < 5, "raised at once, no reconnect retries"
    message = str(info.value)
    assert f"{limit + 1} bytes" in message and f"{limit} bytes" in message
    assert env.engine.list_executions() == []
    with pytest.raises(hydra.PayloadError):
        env.engine.start_workflow("wf", encoded(limit + 1), idempotency_key="k")
    assert env.engine.list_executions() == []


def test_oversized_step_result_fails_the_step_once_without_retries(make_env: MakeEnv) -> None:
    env = make_env()
    limit = limit_of(env.engine)
    caught: list[hydra.StepFailedError] = []

    @hydra.workflow("big-step")
    def wf(ctx: hydra.WorkflowContext, req: None) -> str:
        try:
            hydra.step(ctx, "big", lambda: encoded(limit + 1))
        except hydra.StepFailedError as exc:
            caught.append(exc)
            raise
        return "unreachable"

    env.register(wf)
    eid = env.start(wf, None)
    start = time.monotonic()
    ex = env.run_until_complete(eid)
    assert time.monotonic() - start < 10
    assert ex.status == "failed" and ex.error_type == "StepFailedError"
    assert env.step_runs(eid, "big") == 1, "an oversized result is not retried"
    step = ex.step("big")
    assert step is not None and (step.status, step.attempts, step.error_type) == (
        "failed",
        1,
        "PayloadError",
    )
    assert step.error_message is not None and f"{limit} bytes" in step.error_message
    assert caught and caught[0].error_type == "PayloadError"


def test_oversized_workflow_output_fails_the_execution(make_env: MakeEnv) -> None:
    env = make_env()
    limit = limit_of(env.engine)

    @hydra.workflow("big-output")
    def wf(ctx: hydra.WorkflowContext, req: None) -> str:
        return encoded(limit + 1)

    env.register(wf)
    eid = env.start(wf, None, max_attempts=3)
    start = time.monotonic()
    ex = env.run_until_complete(eid)
    assert time.monotonic() - start < 10
    assert (ex.status, ex.error_type, ex.attempt) == ("failed", "PayloadError", 1)
    assert ex.error_message is not None and f"{limit} bytes" in ex.error_message
    assert ex.output is None


def test_oversized_cron_payload_raises_at_registration(make_env: MakeEnv) -> None:
    env = make_env()
    limit = limit_of(env.engine)
    with pytest.raises(hydra.PayloadError):
        env.engine.register_cron("@daily", "big", workflow="wf", payload=encoded(limit + 1))
    assert env.engine.list_cron_jobs() == []


@pytest.mark.parametrize("worst", [False, True], ids=["plain", "escaped"])
def test_values_just_under_the_limit_round_trip(
    sql_store_factory: Callable[[], Store], worst: bool
) -> None:
    env = TestEnvironment(
        store=sql_store_factory(), namespace=f"s-{uuid.uuid4().hex[:10]}", seed=uuid.uuid4().int
    )
    limit = limit_of(env.engine)
    value = encoded(limit, worst)
    assert len(env.engine.marshaller.marshal(value)) <= limit

    @hydra.workflow("just-under")
    def wf(ctx: hydra.WorkflowContext, req: str) -> str:
        got = hydra.step(ctx, "echo", lambda: req[::-1])
        return got[::-1]

    env.register(wf)
    eid = env.start(wf, value)
    ex = env.run_until_complete(eid)
    assert ex.status == "completed", ex.error
    assert ex.input == value and ex.output == value
    step = ex.step("echo")
    assert step is not None and step.output == value[::-1]


def test_the_error_names_the_limit_that_applied(store_factory: Callable[[], Store]) -> None:
    small = hydra.Engine(
        store_factory(), namespace=f"s-{uuid.uuid4().hex[:10]}", max_payload_bytes=100
    )
    with pytest.raises(hydra.PayloadError, match=r"max_payload_bytes"):
        small.start_workflow("wf", encoded(101))
    store = store_factory()
    default = hydra.Engine(store, namespace=f"s-{uuid.uuid4().hex[:10]}")
    with pytest.raises(hydra.PayloadError) as info:
        default.start_workflow("wf", encoded(default.payload_limit + 1))
    if store.max_value_bytes is not None and store.max_value_bytes < DEFAULT:
        assert "max_value_bytes" in str(info.value)
        assert "max_allowed_packet" in str(info.value)
    else:
        assert "max_payload_bytes" in str(info.value)
