"""``hydra.testing.replay_check``: replay stored executions against new code, offline.

Each execution is copied (its row and checkpoints, read from the store) into a throwaway
``MemoryStore`` and run there through the engine's own execution loop
(``hydra.runner.execute``), so the check compares code with history exactly as a worker
would after the deploy (``hydra.run.Run.boundary`` and the runner's parking). Nothing is
written to the store read from, and no step body runs: the run is stopped at the first
checkpoint with no completed record (the end of the stored history) by a run hook. A run
parked in the throwaway store is a violation; one that reached the end of its history,
completed, failed as its history says, or suspended in a new sleep replays fine.

In the copy the execution is due now and has no timeout (a timeout must not cut the
replay short), and the clock stands just after the latest time stored for it, so every
stored sleep has elapsed and the replay goes on past it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from hydra.clock import from_ms
from hydra.events import Observers, Outcome, RunInfo
from hydra.logs import HydraLogger
from hydra.marshal import JSONMarshaller, Marshaller
from hydra.run import Run
from hydra.runner import execute
from hydra.runtime import PayloadLimit, RunRegistry, Runtime
from hydra.status import Status
from hydra.store.base import ExecutionRow, StepRow, Store
from hydra.testing.clock import FakeClock
from hydra.testing.memory import MemoryStore
from hydra.testing.replay_report import ReplayReport, ReplayViolation, SkippedExecution
from hydra.workflow import Workflow

#: what ``replay_check`` looks at by default: the executions a deploy can still break
UNFINISHED = (Status.PENDING, Status.RUNNING, Status.SLEEPING)
# The store has no cursor for listing executions: each status is read in one list call
# bounded by this (far above any backlog one process can hold in memory anyway).
_EVERY = 2**31 - 1
# Lines of the runs in the throwaway store (parked, failed...) and of the workflows'
# ctx.logger past their history are not the user's business: they stop here.
_QUIET = logging.getLogger("hydra.replay_check")
_QUIET.propagate = False
_QUIET.addHandler(logging.NullHandler())
_WORKER = "replay-check"
_LEASE_MS = 24 * 3_600_000
_NO_PAYLOAD_LIMIT = PayloadLimit(2**62, "replay_check (no limit)")


class _HistoryEnds(BaseException):
    """The code reached a checkpoint with no completed record: the stored history ends
    here, and everything up to it replayed. A BaseException, like a crash the test kit
    simulates, so that the workflow's ``except Exception`` cannot swallow it."""


class _StopAtNewWork:
    """Run hooks that stop a replay before anything new would happen: a step body, a
    receive or child wait with no stored message, a send, an event, a child's start.
    A ``patched`` question asked while the run still replays is answered and recorded
    (in the throwaway store) as a worker would, so that the replay goes on."""

    def step_reached(self, run: RunInfo, step_name: str) -> None:
        if step_name.startswith("patch:") and isinstance(run, Run) and run.replaying:
            return
        raise _HistoryEnds(step_name)

    def step_entered(self, run: RunInfo, step_name: str, attempt: int) -> None:
        raise _HistoryEnds(step_name)  # never reached: step_reached stops first

    def step_ran(self, run: RunInfo, step_name: str) -> None:
        pass

    def step_returned(self, run: RunInfo, step_name: str) -> None:
        pass

    def checkpoint_written(self, run: RunInfo, name: str) -> None:
        pass


def replay_check(
    workflows: Iterable[Workflow[Any]],
    store: Store,
    *,
    namespace: str = "default",
    statuses: Iterable[Status | str] | None = None,
    limit: int | None = None,
    include_finished: bool = False,
    marshaller: Marshaller | None = None,
) -> ReplayReport:
    """Replay the executions stored in ``namespace`` against ``workflows`` (matched by
    name) without running step bodies or writing to ``store``.

    By default the unfinished executions (pending, running, sleeping: parked ones too)
    are checked; ``include_finished=True`` adds completed, failed and cancelled ones,
    ``statuses`` names exactly which. ``limit`` bounds how many are read. Executions of
    workflows not given are reported as skipped. Give the ``marshaller`` your engine
    uses if it is not the default one.
    """
    by_name = {wf.name: wf for wf in workflows}
    wanted = _statuses(statuses, include_finished)
    codec = marshaller if marshaller is not None else JSONMarshaller()
    checked = 0
    violations: list[ReplayViolation] = []
    skipped: list[SkippedExecution] = []
    for row in _stored(store, namespace, wanted, limit):
        workflow = by_name.get(row.workflow_name)
        if workflow is None:
            skipped.append(SkippedExecution(row.id, row.workflow_name, str(row.status)))
            continue
        checked += 1
        found = replay_one(workflow, row, store.list_steps(row.id), codec)
        if found is not None:
            violations.append(found)
    return ReplayReport(checked, violations, skipped)


def _statuses(statuses: Iterable[Status | str] | None, include_finished: bool) -> list[Status]:
    if statuses is not None:
        return [Status(s) for s in statuses]
    return list(Status) if include_finished else list(UNFINISHED)


def _stored(
    store: Store, namespace: str, statuses: Sequence[Status], limit: int | None
) -> Iterator[ExecutionRow]:
    left = _EVERY if limit is None else limit
    for status in statuses:
        if left <= 0:
            return
        rows = store.list_executions(namespace, status=status, limit=left)
        left -= len(rows)
        yield from rows


@dataclass(frozen=True, slots=True)
class _Replayed:
    outcome: Outcome | None  # None: stopped at the end of its history
    run: Run | None


def replay_one(
    workflow: Workflow[Any], row: ExecutionRow, steps: Sequence[StepRow], marshaller: Marshaller
) -> ReplayViolation | None:
    """Replay one stored execution (``row`` and its checkpoints ``steps``) against
    ``workflow`` in a throwaway store; the violation found, if any."""
    clock = FakeClock(from_ms(_latest(row, steps) + 1))
    now = clock.now_ms()
    scratch = MemoryStore(clock)
    scratch.restore(_due_copy(row, now), steps)
    runtime = Runtime(
        store=scratch,
        clock=clock,
        marshaller=marshaller,
        observers=Observers((), _QUIET),
        logger=HydraLogger(_QUIET),
        namespace=row.namespace,
        registry=RunRegistry(),
        payloads=_NO_PAYLOAD_LIMIT,
    )
    (claim,) = scratch.claim(
        row.namespace, [row.workflow_name], _WORKER, now_ms=now, lease_ms=_LEASE_MS, limit=1
    )
    runs: list[Run] = []
    try:
        outcome: Outcome | None = execute(
            runtime, workflow, claim, lease_ms=_LEASE_MS, hooks=_StopAtNewWork(), on_run=runs.append
        )
    except _HistoryEnds:
        outcome = None
    return _verdict(row, _Replayed(outcome, runs[0] if runs else None), scratch)


def _verdict(
    row: ExecutionRow, replayed: _Replayed, scratch: MemoryStore
) -> ReplayViolation | None:
    run = replayed.run
    if run is not None and run.violation is not None:
        v = run.violation
        return ReplayViolation(
            row.id, row.workflow_name, str(row.status), v.position, v.stored, v.code, str(v)
        )
    if run is None and replayed.outcome == Outcome.FAILED:
        # The run ended before the workflow's code was called: its input no longer
        # decodes into the workflow's input type (a worker would fail the execution).
        after = scratch.get_execution(row.namespace, row.id)
        message = after.error_message if after is not None else None
        return ReplayViolation(
            row.id,
            row.workflow_name,
            str(row.status),
            None,
            "the execution's input",
            "the workflow's input type",
            f"execution {row.id}'s input no longer decodes: {message}",
        )
    return None


def _latest(row: ExecutionRow, steps: Sequence[StepRow]) -> int:
    """The latest time stored for the execution (a sleep's wake time among them)."""
    times = [row.created_at, row.updated_at, row.run_at, row.started_at, row.completed_at]
    times += [row.sleep_until, row.next_retry_at]
    for step in steps:
        times += [step.started_at, step.completed_at]
    return max(t for t in times if t is not None)


def _due_copy(row: ExecutionRow, now: int) -> ExecutionRow:
    """``row`` as the throwaway store holds it: pending and due now, with no lease and
    no timeout, its attempt count kept (a first claim still counts as one)."""
    return replace(
        row,
        status=Status.PENDING,
        output=None,
        error_type=None,
        error_message=None,
        timeout_ms=None,
        timeout_at=None,
        completed_at=None,
        sleep_until=None,
        next_retry_at=None,
        wake_at=now,
        lease_owner=None,
        lease_expires_at=None,
        wait_topic=None,
    )


__all__ = ["UNFINISHED", "replay_check", "replay_one"]
