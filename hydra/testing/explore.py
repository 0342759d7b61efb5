"""``explore_crashes``: prove a workflow crash-safe by crashing it at every point once."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hydra.status import StepStatus
from hydra.testing.env import PHASES, Phase, StuckExecutionError, TestEnvironment
from hydra.workflow import Workflow

Check = Callable[[TestEnvironment, str], None]
EnvFactory = Callable[[], TestEnvironment]


@dataclass(frozen=True)
class CrashCase:
    """One run of the exploration: a crash at ``phase`` of ``step`` (None: no crash)."""

    step: str | None
    phase: Phase | None
    execution_id: str
    violations: tuple[str, ...]
    history: str

    def __str__(self) -> str:
        where = "no crash" if self.step is None else f"crash {self.phase} {self.step!r}"
        return where + ("" if not self.violations else ": " + "; ".join(self.violations))


@dataclass
class CrashReport:
    """Every case explored; ``violations`` lists the failing ones."""

    steps: list[str]
    cases: list[CrashCase] = field(default_factory=list)

    @property
    def violations(self) -> list[CrashCase]:
        return [c for c in self.cases if c.violations]

    @property
    def ok(self) -> bool:
        return not self.violations

    def summary(self) -> str:
        lines = [
            f"{len(self.cases)} crash cases over steps {self.steps}: "
            f"{len(self.violations)} with violations"
        ]
        lines += [f"  {case}" for case in self.violations]
        return "\n".join(lines)


class CrashSafetyError(AssertionError):
    """``explore_crashes`` found a crash point that breaks the workflow's guarantees."""

    def __init__(self, report: CrashReport) -> None:
        first = report.violations[0]
        super().__init__(
            f"{report.summary()}\n\nhistory of the first failing case ({first}):\n{first.history}"
        )
        self.report = report


def explore_crashes(
    workflow: Workflow[Any],
    payload: Any,
    check: Check | None = None,
    *,
    also_register: Iterable[Workflow[Any]] = (),
    phases: Sequence[Phase] = PHASES,
    make_env: EnvFactory | None = None,
    start_options: dict[str, Any] | None = None,
    raise_on_violation: bool = True,
    messages: Sequence[tuple[str, Any]] = (),
) -> CrashReport:
    """Run ``workflow(payload)`` once per crash point and check each outcome.

    First a clean run finds the steps the workflow reaches (including compensation
    steps). Then, for every step and every phase in ``phases``, a fresh environment
    (``make_env()``, default ``TestEnvironment()``) runs it with the worker killed at
    that point, to completion, and checks:

    - hydra's guarantee: every step whose checkpoint was written ran its body exactly
      once, except the crashed step, whose body ran at most twice;
    - every message was received at most once, by a receive whose checkpoint holds it,
      and every ``hydra.send`` checkpoint stored exactly one message;
    - ``check(env, execution_id)``, yours: assert on your side effects (a ledger, a fake
      payment API) and on the final status.

    ``messages``: ``(topic, payload)`` pairs sent to the execution right after it starts
    (``env.send``), for a workflow that receives them; receives, sends and events are
    crash points too (``before``: nothing written; ``during``/``after``: written, and the
    worker died before the workflow went on).

    Returns a ``CrashReport``; with ``raise_on_violation`` (default) raises
    ``CrashSafetyError`` naming every failing case and the history of the first.
    """
    # pytest leaves this function's frames out of a failure's traceback: the
    # CrashSafetyError message (cases and history) is the whole story.
    __tracebackhide__ = True
    factory = make_env or TestEnvironment
    options = dict(start_options or {})

    def one_case(step: str | None, phase: Phase | None) -> tuple[CrashCase, list[str]]:
        env = factory()
        env.register(workflow)
        for extra in also_register:
            env.register(extra)
        eid = env.start(workflow.name, payload, **options)
        for topic, message in messages:
            env.send(eid, topic, message)
        if step is not None and phase is not None:
            env.crash(step=step, phase=phase, execution_id=eid)
        violations: list[str] = []
        try:
            execution = env.run_until_complete(eid)
        except StuckExecutionError as exc:
            violations.append(f"did not finish: {str(exc).splitlines()[0]}")
            return CrashCase(step, phase, eid, tuple(violations), env.format_history()), []
        for record in execution.steps:
            if record.status != StepStatus.COMPLETED:
                continue
            runs = env.step_runs(eid, record.name)
            # Every attempt the step made runs its body once; the crashed attempt (during
            # or after its body) ran it once more without recording anything.
            crashed_inside = record.name == step and phase in ("during", "after")
            allowed = record.attempts + (1 if crashed_inside else 0)
            if runs > allowed:
                violations.append(
                    f"step {record.name!r} ran {runs} times (at most {allowed} allowed)"
                )
        violations.extend(_message_violations(env, eid, execution))
        if check is not None:
            try:
                check(env, eid)
            except AssertionError as exc:
                violations.append(f"check failed: {exc}")
        reached = [s.name for s in execution.steps if s.kind != "sleep"]
        return CrashCase(step, phase, eid, tuple(violations), env.format_history()), reached

    clean, steps = one_case(None, None)
    report = CrashReport(steps=steps, cases=[clean])
    for step_name in steps:
        for phase in phases:
            case, _ = one_case(step_name, phase)
            report.cases.append(case)
    if raise_on_violation and not report.ok:
        raise CrashSafetyError(report)
    return report


def _message_violations(env: TestEnvironment, execution_id: str, execution: Any) -> list[str]:
    """Exactly-once delivery, seen from the records: each received message names a
    completed receive that holds it, no receive holds two, and each send checkpoint
    stored one message."""
    found: list[str] = []
    receives = {s.name: s for s in execution.steps if s.kind in ("receive", "child_wait")}
    holders: dict[str, str] = {}
    for message in env.engine.list_messages(execution_id):
        if message.received_by is None:
            continue
        step = receives.get(message.received_by)
        if step is None or step.status != StepStatus.COMPLETED:
            found.append(
                f"message {message.id} was consumed by {message.received_by!r}, "
                "which holds no received message"
            )
        elif message.received_by in holders:
            found.append(f"receive {message.received_by!r} consumed two messages")
        holders[message.received_by] = message.id
    sends = [s for s in execution.steps if s.kind == "send"]
    sent = env.engine.list_messages(execution_id, sent=True)
    if len(sent) != len(sends):
        found.append(f"{len(sends)} send checkpoints stored {len(sent)} messages")
    return found
