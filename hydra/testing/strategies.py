"""Hypothesis strategies for property-testing workflows against crashes and interleavings.

This module needs `Hypothesis <https://hypothesis.readthedocs.io>`_ (``pip install
hypothesis``). ``hydra.testing`` does not import it, so only tests that use it need
Hypothesis installed.

- ``crash_schedules(steps)``: lists of ``(step, phase)`` crash points, such as
  ``[("charge", "after"), ("ship", "before")]``;
- ``interleavings()``: an ``Interleaving`` (a seed and a number of simulated workers) to
  build the ``TestEnvironment`` from: the seed fixes the execution ids, hence the order in
  which executions due at the same time are claimed, and the worker count fixes which
  worker runs what and who takes over after a crash;
- ``apply_schedule(env, schedule)`` arms a schedule's crashes on an environment.

A property test then states what must hold whatever crashes happen::

    from hypothesis import given, settings

    from hydra.testing.strategies import apply_schedule, crash_schedules, interleavings

    STEPS = ["process-payment", "reserve-inventory", "create-shipping"]


    @settings(max_examples=50, deadline=None, derandomize=True)
    @given(schedule=crash_schedules(STEPS, max_crashes=2), interleaving=interleavings())
    def test_orders_survive_any_two_crashes(schedule, interleaving):
        env = interleaving.environment()
        env.register(OrderWorkflow())
        # One attempt per crash plus one: every execution is certain to complete.
        eid = env.start("order-processing", ORDER, max_attempts=3)
        apply_schedule(env, schedule, execution_id=eid)
        execution = env.run_until_complete(eid)
        assert execution.status == "completed"
        for step in STEPS:  # completed steps ran once, plus once per crash inside them
            crashes = schedule.count((step, "during")) + schedule.count((step, "after"))
            assert env.step_runs(eid, step) <= 1 + crashes

Each crash point kills the next worker that reaches it (see ``TestEnvironment.crash``); a
point that no worker reaches (a step already checkpointed when its turn comes) never
fires, so a schedule is an upper bound on the crashes that happen. ``deadline=None`` is
advisable (an example's run time includes a whole workflow), and ``derandomize=True``
makes a CI run reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from hypothesis import strategies as st

from hydra.testing.env import PHASES, Phase, TestEnvironment

#: ``(step name, phase)``: where one simulated worker dies
CrashPoint = tuple[str, Phase]
#: crash points in the order they were drawn; each kills at most one worker
CrashSchedule = list[CrashPoint]

#: the largest seed ``interleavings`` draws by default
MAX_SEED = 2**32 - 1


class Interleaving(NamedTuple):
    """A seed and a worker count for ``TestEnvironment(workers=..., seed=...)``.

    A named tuple, so ``seed, workers = interleaving`` works too.
    """

    seed: int
    workers: int

    def environment(self, **options: Any) -> TestEnvironment:
        """``TestEnvironment(workers=self.workers, seed=self.seed, **options)``.

        On a SQL store shared with other environments, pass a distinct ``namespace``;
        environments with the same seed also make the same execution ids, so keep seeds
        apart there as well (or use one ``MemoryStore`` per environment, the default).
        """
        return TestEnvironment(workers=self.workers, seed=self.seed, **options)


def crash_points(
    steps: Sequence[str], phases: Sequence[Phase] = PHASES
) -> st.SearchStrategy[CrashPoint]:
    """One ``(step, phase)`` with the step drawn from ``steps``, the phase from ``phases``.

    Shrinks towards the first step and the first phase.
    """
    step_names = _checked_steps(steps)
    phase_names = _checked_phases(phases)
    return st.tuples(st.sampled_from(step_names), st.sampled_from(phase_names))


def crash_schedules(
    steps: Sequence[str],
    max_crashes: int = 2,
    *,
    min_crashes: int = 0,
    phases: Sequence[Phase] = PHASES,
) -> st.SearchStrategy[CrashSchedule]:
    """Lists of ``min_crashes`` to ``max_crashes`` crash points over ``steps``.

    ``steps`` are the workflow's step names (not its sleeps: a sleep is not a crash
    point). A point may repeat: ``[("ship", "after"), ("ship", "after")]`` kills the
    worker that runs ``ship`` and then the one that takes over from it. The empty
    schedule (no crash) is included unless ``min_crashes > 0``, and failing examples
    shrink towards fewer crashes. Start executions with ``max_attempts > max_crashes``
    if they must complete: every crash uses up a workflow attempt.

    >>> crash_schedules(["charge", "ship"], max_crashes=1).example()  # doctest: +SKIP
    [('ship', 'after')]
    """
    if isinstance(max_crashes, bool) or not isinstance(max_crashes, int) or max_crashes < 0:
        raise ValueError(f"max_crashes must be an int >= 0, got {max_crashes!r}")
    if isinstance(min_crashes, bool) or not isinstance(min_crashes, int) or min_crashes < 0:
        raise ValueError(f"min_crashes must be an int >= 0, got {min_crashes!r}")
    if min_crashes > max_crashes:
        raise ValueError(f"min_crashes ({min_crashes}) is larger than max_crashes ({max_crashes})")
    return st.lists(crash_points(steps, phases), min_size=min_crashes, max_size=max_crashes)


def interleavings(
    max_workers: int = 3, *, min_workers: int = 1, max_seed: int = MAX_SEED
) -> st.SearchStrategy[Interleaving]:
    """``Interleaving(seed, workers)`` with ``min_workers <= workers <= max_workers``.

    Shrinks towards seed 0 and one worker.

    >>> interleavings(max_workers=2).example()  # doctest: +SKIP
    Interleaving(seed=1804289383, workers=2)
    """
    if isinstance(min_workers, bool) or not isinstance(min_workers, int) or min_workers < 1:
        raise ValueError(f"min_workers must be an int >= 1, got {min_workers!r}")
    if isinstance(max_workers, bool) or not isinstance(max_workers, int):
        raise ValueError(f"max_workers must be an int, got {max_workers!r}")
    if max_workers < min_workers:
        raise ValueError(f"max_workers ({max_workers}) is smaller than min_workers ({min_workers})")
    if isinstance(max_seed, bool) or not isinstance(max_seed, int) or max_seed < 0:
        raise ValueError(f"max_seed must be an int >= 0, got {max_seed!r}")
    return st.builds(
        Interleaving,
        seed=st.integers(min_value=0, max_value=max_seed),
        workers=st.integers(min_value=min_workers, max_value=max_workers),
    )


def apply_schedule(
    env: TestEnvironment, schedule: Sequence[CrashPoint], *, execution_id: str | None = None
) -> None:
    """Arm every crash point of ``schedule`` on ``env`` (``env.crash(step, phase)`` each).

    With ``execution_id``, the crashes hit only that execution; otherwise each kills
    whichever worker first reaches its point, in any execution. Call it before running
    the environment.
    """
    for step, phase in schedule:
        env.crash(step, phase, execution_id=execution_id)


def _checked_steps(steps: Sequence[str]) -> tuple[str, ...]:
    if isinstance(steps, str):
        raise TypeError(f"steps must be a sequence of step names, not the string {steps!r}")
    names = tuple(steps)
    if not names:
        raise ValueError("steps must name at least one step")
    for name in names:
        if not isinstance(name, str) or not name:
            raise ValueError(f"step names must be non-empty strings, got {name!r}")
    return names


def _checked_phases(phases: Sequence[Phase]) -> tuple[Phase, ...]:
    if isinstance(phases, str):
        raise TypeError(f"phases must be a sequence of phases, not the string {phases!r}")
    chosen = tuple(phases)
    if not chosen:
        raise ValueError(f"phases must name at least one of {PHASES}")
    for phase in chosen:
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
    return chosen


__all__ = [
    "MAX_SEED",
    "CrashPoint",
    "CrashSchedule",
    "Interleaving",
    "apply_schedule",
    "crash_points",
    "crash_schedules",
    "interleavings",
]
