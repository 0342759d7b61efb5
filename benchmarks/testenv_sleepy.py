"""Benchmark: ``TestEnvironment`` running many executions that sleep for days.

Starts ``--executions`` (default 1,000) executions of a three-step workflow that sleeps
48 hours between steps (step, sleep 48 h, step, sleep 48 h, step) on one
``TestEnvironment()`` (``MemoryStore``, ``FakeClock``, one simulated worker) and runs them
all to completion with ``env.run_until_all_complete()``. Every repeat builds a fresh
environment; the timing covers start + run (not the checks afterwards).

    python benchmarks/testenv_sleepy.py [--executions 1000] [--repeat 5]

Checks every execution completed and every step body ran exactly once, then prints the
wall time of each repeat, the best and the median, the runs executed, executions/s and
the virtual time covered. Target: under 1 s of wall time for 1,000 executions.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import timedelta

import hydra
from hydra.testing import TestEnvironment

STEPS = ("reserve", "charge", "ship")
NAP = timedelta(hours=48)


class Sleepy(hydra.Workflow[int]):
    name = "sleepy"

    def run(self, ctx: hydra.WorkflowContext, n: int) -> int:
        a = hydra.step(ctx, "reserve", lambda: n + 1)
        hydra.sleep(ctx, NAP)
        b = hydra.step(ctx, "charge", lambda: a * 2)
        hydra.sleep(ctx, NAP)
        return hydra.step(ctx, "ship", lambda: b - 1)


@dataclass
class Result:
    wall_s: float
    runs: int
    virtual: timedelta


def one_repeat(executions: int) -> Result:
    env = TestEnvironment()
    env.register(Sleepy())
    started_at = env.clock.now()
    t0 = time.perf_counter()
    ids = [env.start("sleepy", n) for n in range(executions)]
    runs = env.run_until_all_complete()
    wall = time.perf_counter() - t0
    virtual = env.clock.now() - started_at
    check(env, ids)
    return Result(wall, runs, virtual)


def check(env: TestEnvironment, ids: list[str]) -> None:
    for n, eid in enumerate(ids):
        ex = env.execution(eid)
        if ex.status != hydra.Status.COMPLETED:
            sys.exit(f"execution {eid} is {ex.status.value}:\n{env.format_history(eid)}")
        if ex.output != (n + 1) * 2 - 1:
            sys.exit(f"execution {eid} returned {ex.output!r}, expected {(n + 1) * 2 - 1}")
        for name in STEPS:
            if (runs := env.step_runs(eid, name)) != 1:
                sys.exit(f"step {name!r} of {eid} ran {runs} times, expected exactly once")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--executions", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    if args.executions < 1 or args.repeat < 1:
        parser.error("--executions and --repeat must be >= 1")

    results = []
    for i in range(args.repeat):
        result = one_repeat(args.executions)
        results.append(result)
        print(f"repeat {i + 1}: {result.wall_s * 1000:8.1f} ms  ({result.runs} runs)")

    walls = [r.wall_s for r in results]
    best, median = min(walls), statistics.median(walls)
    last = results[-1]
    print(
        f"\n{args.executions} executions x 3 steps, 2 x 48 h sleeps each, "
        f"{args.repeat} repeats (all completed, every step body ran exactly once)"
    )
    print(f"wall time     best {best * 1000:.1f} ms   median {median * 1000:.1f} ms")
    print(f"runs          {last.runs} ({last.runs / args.executions:g} per execution)")
    print(
        f"throughput    {args.executions / best:,.0f} executions/s (best), "
        f"{args.executions / median:,.0f} executions/s (median)"
    )
    print(f"virtual time  {last.virtual} ({last.virtual / timedelta(hours=1):g} h)")
    if args.executions == 1000:
        print(f"target        < 1 s for 1,000 executions: {'met' if best < 1.0 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
