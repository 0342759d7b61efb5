"""Values some database cannot store get the same clear error on every backend.

Each test here reproduced a bug on at least one backend: PostgreSQL rejects NUL characters
that SQLite accepts (a raw ``DataError`` after the step body had run), a too-long error type
or a 2**31 attempt count overflowed a column on PostgreSQL/MariaDB, and a value over
MariaDB's ``max_allowed_packet`` hung in reconnect retries before failing. Driven by
``TestEnvironment`` on every store, on virtual time.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

import hydra
from hydra.store.base import Store
from hydra.testing import TestEnvironment

MakeEnv = Callable[..., TestEnvironment]

#: names no database may get: NUL, other C0 and C1 controls, DEL, a lone surrogate
BAD_NAMES = ["a\x00b", "a\x1bb", "line\nbreak", "tab\there", "a\x7fb", "a\x85b", "a\ud800b"]


@pytest.fixture
def make_env(store_factory: Callable[[], Store]) -> MakeEnv:
    def make(**options: Any) -> TestEnvironment:
        options.setdefault("namespace", f"v-{uuid.uuid4().hex[:10]}")
        options.setdefault("seed", uuid.uuid4().int)
        return TestEnvironment(store=store_factory(), **options)

    return make


# -- names and keys -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["step", "sleep", "sleep_until"])
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_invalid_step_or_sleep_name_fails_the_execution_at_once(
    make_env: MakeEnv, kind: str, is_async: bool
) -> None:
    env = make_env()
    entered: list[str] = []
    bad = "charge\x00card"

    def body() -> str:
        entered.append("x")
        return "ok"

    def call(ctx: hydra.WorkflowContext) -> Any:
        if kind == "step":
            return hydra.step(ctx, bad, body)
        if kind == "sleep":
            return hydra.sleep(ctx, timedelta(seconds=1), name=bad)
        return hydra.sleep_until(ctx, env.clock.now() + timedelta(seconds=1), name=bad)

    if is_async:

        @hydra.workflow("bad-name")
        async def wf(ctx: hydra.WorkflowContext, req: None) -> Any:
            return await call(ctx)

    else:

        @hydra.workflow("bad-name")
        def wf(ctx: hydra.WorkflowContext, req: None) -> Any:
            return call(ctx)

    env.register(wf)
    eid = env.start(wf, None, max_attempts=3)
    ex = env.run_until_complete(eid)
    assert ex.status == "failed"
    assert ex.attempt == 1, "an invalid name is not retried"
    assert ex.error_type == "InvalidNameError"
    assert ex.error_message is not None and "control character" in ex.error_message
    assert entered == [] and env.step_runs(eid, bad) == 0
    assert ex.steps == []


def test_invalid_name_error_is_non_retryable_and_a_value_error() -> None:
    assert issubclass(hydra.InvalidNameError, hydra.NonRetryableError)
    assert issubclass(hydra.InvalidNameError, ValueError)
    assert "InvalidNameError" in hydra.__all__


@pytest.mark.parametrize("bad", BAD_NAMES, ids=repr)
def test_invalid_idempotency_key_and_workflow_name_raise_and_store_nothing(
    make_env: MakeEnv, bad: str
) -> None:
    env = make_env()
    with pytest.raises(hydra.InvalidNameError, match="idempotency_key"):
        env.engine.start_workflow("wf", None, idempotency_key=bad)
    with pytest.raises(hydra.InvalidNameError, match="workflow name"):
        env.engine.start_workflow(bad, None)
    assert env.engine.list_executions() == []


@pytest.mark.parametrize("bad", BAD_NAMES, ids=repr)
def test_every_name_rejects_control_characters_and_surrogates(bad: str) -> None:
    from hydra.testing.memory import MemoryStore

    engine = hydra.Engine(MemoryStore())
    with pytest.raises(hydra.InvalidNameError, match="namespace"):
        hydra.Engine(MemoryStore(), namespace=bad)
    with pytest.raises(hydra.InvalidNameError, match="worker_id"):
        hydra.Worker(engine, worker_id=bad)
    with pytest.raises(hydra.InvalidNameError, match="cron job name"):
        engine.register_cron("@daily", bad, lambda ctx: None)
    with pytest.raises(hydra.InvalidNameError, match="workflow name"):
        hydra.workflow(bad)
    assert hydra.workflow("ok name with inner spaces") is not None


def test_name_length_and_whitespace_rules_stay() -> None:
    from hydra.workflow import validate_name

    assert validate_name("x" * 255, "step name") == "x" * 255
    assert validate_name("\u00e9t\u00e9 \U0001f600", "step name") == "\u00e9t\u00e9 \U0001f600"
    with pytest.raises(hydra.InvalidNameError, match="at most 255"):
        validate_name("x" * 256, "step name")
    with pytest.raises(hydra.InvalidNameError, match="whitespace"):
        validate_name("a ", "step name")
    with pytest.raises(hydra.InvalidNameError, match="non-empty"):
        validate_name("", "step name")


# -- retry ranges -------------------------------------------------------------------------

I32 = 2**31 - 1


@pytest.mark.parametrize("bad", [0, I32 + 1, 2**63, True])
def test_start_workflow_max_attempts_out_of_range_raises_and_stores_nothing(
    make_env: MakeEnv, bad: int
) -> None:
    env = make_env()
    with pytest.raises(ValueError, match="max_attempts"):
        env.engine.start_workflow("wf", None, max_attempts=bad)
    assert env.engine.list_executions() == []


def test_largest_max_attempts_is_stored_and_retries_with_a_capped_backoff(
    make_env: MakeEnv,
) -> None:
    env = make_env()
    failures: list[int] = []
    policy = hydra.RetryPolicy(max_attempts=I32, max_backoff=timedelta(seconds=4))

    def flaky() -> str:
        failures.append(len(failures))
        if len(failures) < 4:
            raise ConnectionError("down")
        return "ok"

    @hydra.workflow("many-attempts")
    def wf(ctx: hydra.WorkflowContext, req: None) -> str:
        return hydra.step(ctx, "call", flaky, retry=policy)

    env.register(wf)
    t0 = env.clock.now()
    eid = env.start(wf, None, max_attempts=I32)
    ex = env.run_until_complete(eid)
    assert (ex.status, ex.output, ex.max_attempts) == ("completed", "ok", I32)
    # waits of 1, 2 and 4 s (capped at 4)
    assert ex.completed_at == t0 + timedelta(seconds=7)


def test_initial_backoff_over_5_minutes_is_not_cut_to_the_default_cap(
    make_env: MakeEnv,
) -> None:
    env = make_env()
    calls: list[int] = []

    def fails_once() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("down")
        return "ok"

    @hydra.workflow("slow-backoff")
    def wf(ctx: hydra.WorkflowContext, req: None) -> str:
        policy = hydra.RetryPolicy(initial_backoff=timedelta(hours=1))
        return hydra.step(ctx, "call", fails_once, retry=policy)

    env.register(wf)
    t0 = env.clock.now()
    eid = env.start(wf, None)
    env.run_until_idle()
    assert env.execution(eid).sleep_until == t0 + timedelta(hours=1)
    assert env.run_until_complete(eid).completed_at == t0 + timedelta(hours=1)


@pytest.mark.parametrize("bad", [float("inf"), float("nan"), timedelta.max])
def test_unrepresentable_durations_raise_clear_errors(make_env: MakeEnv, bad: Any) -> None:
    env = make_env()
    with pytest.raises(ValueError, match="retry_backoff"):
        env.engine.start_workflow("wf", None, retry_backoff=bad)
    with pytest.raises(ValueError, match="timeout"):
        env.engine.start_workflow("wf", None, timeout=bad)
    assert env.engine.list_executions() == []


# -- error texts ----------------------------------------------------------------------------

LONG_NAME = "E" * 300
LongNamedError = type(LONG_NAME, (Exception,), {})


@pytest.mark.parametrize(
    ("exc", "want_type", "want_message"),
    [
        (ValueError("bad\x00byte from an API"), "ValueError", "bad\\x00byte from an API"),
        (ValueError("lone \udc80 surrogate"), "ValueError", "lone \\udc80 surrogate"),
        (LongNamedError("long name"), LONG_NAME[:255], "long name"),
    ],
    ids=["nul", "surrogate", "long-type"],
)
def test_step_error_texts_are_stored_storably(
    make_env: MakeEnv, exc: Exception, want_type: str, want_message: str
) -> None:
    env = make_env()

    def boom() -> None:
        raise exc

    caught: list[hydra.StepFailedError] = []

    @hydra.workflow("bad-error")
    def wf(ctx: hydra.WorkflowContext, req: None) -> str:
        try:
            hydra.step(ctx, "call", boom, retry=hydra.RetryPolicy(max_attempts=2))
        except hydra.StepFailedError as failed:
            caught.append(failed)
            raise
        return "unreachable"

    env.register(wf)
    eid = env.start(wf, None, max_attempts=2)
    ex = env.run_until_complete(eid)
    assert ex.status == "failed"
    assert env.step_runs(eid, "call") == 2, "the step body ran once per step attempt only"
    step = ex.step("call")
    assert step is not None
    assert (step.status, step.attempts) == ("failed", 2)
    assert (step.error_type, step.error_message) == (want_type, want_message)
    assert (ex.error_type, caught[-1].error_type) == ("StepFailedError", want_type)
    assert ex.error_message is not None and want_message in ex.error_message


@pytest.mark.parametrize("final", [False, True], ids=["retry", "final"])
def test_workflow_error_texts_are_stored_storably(make_env: MakeEnv, final: bool) -> None:
    env = make_env()

    @hydra.workflow("bad-workflow-error")
    def wf(ctx: hydra.WorkflowContext, req: None) -> str:
        if ctx.attempt == 1 or final:
            raise LongNamedError(f"attempt {ctx.attempt}: \x00 \udcff " + "x" * 100_000)
        return "ok"

    env.register(wf)
    eid = env.start(wf, None, max_attempts=1 if final else 2)
    env.run_until_idle()
    ex = env.execution(eid)
    assert ex.status == ("failed" if final else "pending")
    assert ex.error_type == LONG_NAME[:255]
    message = ex.error_message
    assert message is not None
    assert message.startswith("attempt 1: \\x00 \\udcff xxx")
    assert len(message) <= 65536
    original = len("attempt 1: \x00 \udcff " + "x" * 100_000)
    assert message.endswith(f"... [truncated: {original} characters in all]")
    if not final:
        assert env.run_until_complete(eid).output == "ok"


class RawTextMarshaller(hydra.JSONMarshaller):
    """A marshaller whose decode errors quote the raw input, as many do."""

    def unmarshal(self, data: bytes, type_: Any = Any) -> Any:
        value = super().unmarshal(data, Any)
        if type_ is int and not isinstance(value, int):
            raise hydra.PayloadError(f"not an int: {value}")
        return value


def test_undecodable_input_error_with_nul_is_stored(make_env: MakeEnv) -> None:
    """hydra's own messages that embed user text ("cannot decode input: ...") too."""
    env = make_env(marshaller=RawTextMarshaller())

    @hydra.workflow("typed-input")
    def wf(ctx: hydra.WorkflowContext, req: int) -> int:
        return req

    env.register(wf)
    eid = env.start("typed-input", "not\x00an int")  # by name: stored unchecked
    ex = env.run_until_complete(eid)
    assert (ex.status, ex.error_type) == ("failed", "PayloadError")
    assert ex.error_message == "cannot decode input: not an int: not\\x00an int"


def test_a_workflow_cron_name_leaves_room_for_its_idempotency_key(make_env: MakeEnv) -> None:
    """A workflow cron starts each slot with the key ``cron:<name>:<slot ms>``; a name so
    long that the key passes 255 characters failed every slot (only logged)."""
    env = make_env()

    @hydra.workflow("ticked")
    def wf(ctx: hydra.WorkflowContext, req: None) -> str:
        return "ok"

    env.register(wf)
    with pytest.raises(ValueError, match="at most 236 characters"):
        env.engine.register_cron("@hourly", "c" * 237, workflow="ticked")
    # a handler job has no key: its name may use all 255 characters
    env.engine.register_cron("@hourly", "h" * 255, lambda ctx: None)
    env.engine.register_cron("@hourly", "c" * 236, workflow="ticked")
    assert {len(j.name) for j in env.engine.list_cron_jobs()} == {236, 255}
    env.advance(timedelta(hours=1))
    started = env.engine.list_executions()
    assert started and all(ex.status == "completed" for ex in started)
    assert {len(ex.idempotency_key or "") for ex in started} == {255}
