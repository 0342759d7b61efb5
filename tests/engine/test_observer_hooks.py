"""The observer hooks under tracing: ``start_context`` (headers stored with a new
execution), ``step_scope`` (wraps a step body's call) and ``run_ended`` (once per
claim, however the run ended)."""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, suppress
from datetime import timedelta

import pytest

import hydra
from hydra.events import Outcome, RunEnd, RunInfo
from hydra.store.base import Claim
from hydra.testing import TestEnvironment
from hydra.tracecontext import (
    MAX_TRACE_CONTEXT_BYTES,
    decode_trace_context,
    encode_trace_context,
)

#: what a step scope sets for the body to see
CURRENT: contextvars.ContextVar[str | None] = contextvars.ContextVar("current", default=None)


class Hooks(hydra.Observer):
    """Records the hooks' calls: scopes entered and left (with what the body raised and
    the thread), run ends, and gives ``headers`` as its start context."""

    def __init__(self, headers: Mapping[str, str] | None = None) -> None:
        self.headers = headers
        self.parents: list[str | None] = []
        self.scopes: list[tuple[str, str, int, str]] = []
        self.ends: list[tuple[str, RunEnd]] = []
        self.seen_in_body: dict[str, str | None] = {}
        self._lock = threading.Lock()

    def start_context(self, parent: RunInfo | None) -> Mapping[str, str] | None:
        self.parents.append(None if parent is None else parent.execution_id)
        return self.headers

    def step_scope(
        self, run: RunInfo, name: str, attempt: int
    ) -> AbstractContextManager[None] | None:
        return self._scope(name, attempt)

    @contextmanager
    def _scope(self, name: str, attempt: int) -> Iterator[None]:
        token = CURRENT.set(name)
        thread = threading.current_thread().name
        try:
            yield
        except BaseException as exc:
            with self._lock:
                self.scopes.append((name, "raised " + type(exc).__name__, attempt, thread))
            raise
        else:
            with self._lock:
                self.scopes.append((name, "returned", attempt, thread))
        finally:
            CURRENT.reset(token)

    def run_ended(self, claim: Claim, end: RunEnd) -> None:
        self.ends.append((claim.execution.id, end))


def peek(name: str) -> str | None:
    """What a step body sees of the scope it runs in."""
    return CURRENT.get()


@hydra.workflow("hooks-steps")
def steps(ctx: hydra.WorkflowContext, fail_first: bool) -> list[str | None]:
    seen = [hydra.step(ctx, "a", lambda: peek("a"))]
    hydra.sleep(ctx, timedelta(minutes=1), name="nap")
    both = hydra.gather(ctx, {"b": lambda: peek("b"), "c": lambda: peek("c")})
    timed = hydra.step(ctx, "d", lambda: peek("d"), timeout=timedelta(seconds=30))

    def flaky() -> str | None:
        if FAILS[0]:
            FAILS[0] -= 1
            raise ConnectionError("down")
        return peek("e")

    retry = hydra.RetryPolicy(max_attempts=2, initial_backoff=timedelta(seconds=1))
    last = hydra.step(ctx, "e", flaky, retry=retry)
    return [*seen, both["b"], both["c"], timed, last]


FAILS = [0]


def test_a_step_scope_wraps_each_body_that_runs_on_its_thread(
    caplog: pytest.LogCaptureFixture,
) -> None:
    env = TestEnvironment()
    hooks = Hooks()
    env.engine.add_observer(hooks)
    env.register(steps)
    FAILS[0] = 1
    eid = env.start(steps, True)
    # Each body saw the context variable its own scope set (gather's on their threads,
    # "d" on its timeout's helper thread).
    assert env.run_until_complete(eid).output == ["a", "b", "c", "d", "e"]
    assert CURRENT.get() is None  # reset on the way out
    got = sorted((name, how, attempt) for name, how, attempt, _ in hooks.scopes)
    # Only the bodies that ran: "a" once (replayed after the sleep and the backoff), the
    # failed attempt of "e" with its exception, then its second attempt.
    assert got == [
        ("a", "returned", 1),
        ("b", "returned", 1),
        ("c", "returned", 1),
        ("d", "returned", 1),
        ("e", "raised ConnectionError", 1),
        ("e", "returned", 2),
    ]
    threads = {name: thread for name, _, _, thread in hooks.scopes}
    assert threads["b"].startswith("hydra-gather") and threads["c"].startswith("hydra-gather")
    assert threads["a"] == threading.current_thread().name
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


class BadScopes(hydra.Observer):
    """A scope that cannot be made, one that fails entering, one that fails leaving."""

    def __init__(self, how: str) -> None:
        self.how = how

    def step_scope(
        self, run: RunInfo, name: str, attempt: int
    ) -> AbstractContextManager[None] | None:
        if self.how == "make":
            raise RuntimeError("no scope")
        return self._scope()

    @contextmanager
    def _scope(self) -> Iterator[None]:
        if self.how == "enter":
            raise RuntimeError("cannot enter")
        try:
            yield
        finally:
            raise RuntimeError("cannot leave")


class Swallowing(hydra.Observer):
    """A scope that tries to suppress the body's exception."""

    def step_scope(
        self, run: RunInfo, name: str, attempt: int
    ) -> AbstractContextManager[None] | None:
        return self._scope()

    @contextmanager
    def _scope(self) -> Iterator[None]:
        with suppress(Exception):  # would return the body's result as None
            yield


@hydra.workflow("hooks-fails")
def fails(ctx: hydra.WorkflowContext, _: None) -> str:
    def body() -> str:
        raise ValueError("the body failed")

    try:
        return hydra.step(ctx, "body", body, retry=hydra.RetryPolicy(max_attempts=1))
    except hydra.StepFailedError as exc:
        return f"caught {exc.error_type}"


def test_scopes_that_fail_are_logged_and_none_can_swallow_the_body_s_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    env = TestEnvironment()
    for how in ("make", "enter", "leave"):
        env.engine.add_observer(BadScopes(how))
    env.engine.add_observer(Swallowing())
    hooks = Hooks()
    env.engine.add_observer(hooks)
    env.register(fails)
    caplog.set_level(logging.ERROR, logger="hydra")
    eid = env.start(fails, None)
    assert env.run_until_complete(eid).output == "caught ValueError"
    assert [(n, how) for n, how, _, _ in hooks.scopes] == [("body", "raised ValueError")]
    failures = [r.getMessage() for r in caplog.records if "raised in step_scope" in r.getMessage()]
    assert len(failures) == 3, failures


@hydra.workflow("hooks-ends")
def ends(ctx: hydra.WorkflowContext, how: str) -> str:
    hydra.step(ctx, "first", lambda: 1)
    if how == "sleep":
        hydra.sleep(ctx, timedelta(minutes=5), name="nap")
    if how == "raise":
        raise ValueError("no")
    return how


def test_run_ended_comes_once_per_claim_with_how_it_ended() -> None:
    env = TestEnvironment()
    hooks = Hooks()
    env.engine.add_observer(hooks)
    env.register(ends)
    slept = env.start(ends, "sleep")
    raised = env.start(ends, "raise", max_attempts=2)
    crashed = env.start(ends, "ok")
    unknown = env.start("nobody-runs-this", None)
    env.crash("first", "after", execution_id=crashed)
    env.run_until_all_complete()
    assert env.execution(unknown).status == "pending"

    def of(eid: str) -> list[tuple[Outcome | None, str | None]]:
        return [(end.outcome, end.error_type) for e, end in hooks.ends if e == eid]

    assert of(slept) == [(Outcome.SUSPENDED, None), (Outcome.COMPLETED, None)]
    assert of(raised) == [(Outcome.RETRY_SCHEDULED, "ValueError"), (Outcome.FAILED, "ValueError")]
    assert of(crashed) == [(None, "SimulatedCrash"), (Outcome.COMPLETED, None)]
    retry, failure = [end for e, end in hooks.ends if e == raised]
    assert isinstance(retry.exception, ValueError) and retry.error_message == "no"
    assert failure.exception is not retry.exception  # each attempt's own
    claims = [e for e in env.history if e.kind in ("claim", "takeover")]
    assert len(hooks.ends) == len(claims) == 6


@hydra.workflow("hooks-parent")
def parent(ctx: hydra.WorkflowContext, _: None) -> str:
    handle = hydra.start_child(ctx, "kid", "hooks-ends", "child")
    return str(hydra.wait_child(ctx, handle))


def test_start_context_is_merged_stored_and_asked_of_a_child_s_parent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Raising(hydra.Observer):
        def start_context(self, parent: RunInfo | None) -> Mapping[str, str] | None:
            raise RuntimeError("no context")

    class Odd(hydra.Observer):
        def start_context(self, parent: RunInfo | None) -> Mapping[str, str] | None:
            return {"traceparent": "second", "n": 1, "x-vendor": "v"}  # type: ignore[dict-item]

    env = TestEnvironment()
    first = Hooks({"traceparent": "first"})
    for observer in (Raising(), first, Odd()):
        env.engine.add_observer(observer)
    env.register(parent)
    env.register(ends)
    eid = env.start(parent, None)
    assert env.run_until_complete(eid).output == "child"
    (child,) = [e for e in env.engine.list_executions() if e.id != eid]
    stored = {
        row.id: row.trace_context
        for row in env.store.list_executions("test")  # the rows themselves
    }
    assert stored[eid] == stored[child.id] == '{"traceparent":"first","x-vendor":"v"}'
    assert first.parents == [None, eid]  # the start, then the child's start in its parent
    assert len([r for r in caplog.records if "raised in start_context" in r.getMessage()]) == 1

    plain = TestEnvironment()
    plain.engine.add_observer(Hooks(None))
    quiet = plain.start("anything", None)
    assert plain.store.get_execution("test", quiet).trace_context is None  # type: ignore[union-attr]


def test_a_trace_context_is_compact_json_and_one_too_large_keeps_its_link() -> None:
    assert encode_trace_context({}) is None
    assert encode_trace_context({"b": "2", "a": "1"}) == '{"a":"1","b":"2"}'
    huge = {"traceparent": "00-abc-def-01", "tracestate": "k=v", "baggage": "x" * 20_000}
    kept = encode_trace_context(huge)
    assert kept == '{"traceparent":"00-abc-def-01","tracestate":"k=v"}'
    assert encode_trace_context({"baggage": "x" * MAX_TRACE_CONTEXT_BYTES}) is None
    assert decode_trace_context(kept) == {"traceparent": "00-abc-def-01", "tracestate": "k=v"}
    for bad in (None, "", "not json", "[1, 2]", '{"a": 1}'):
        assert decode_trace_context(bad) == {}
    assert encode_trace_context({"k": "é"}) == '{"k":"\\u00e9"}'  # ASCII on every backend
