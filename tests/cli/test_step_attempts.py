"""``hydra trace`` and ``hydra executions show`` list every attempt of a retried step.

The executions are made by a ``TestEnvironment`` on a SQLite file (the fake clock gives
exact times), then read by the CLI as a user would.
"""

from __future__ import annotations

import json
import re
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, delete

import hydra
from hydra.clock import to_ms
from hydra.store.sql.schema import step_attempts
from hydra.testing import TestEnvironment
from hydra_cli import render

from .helpers import hydra_cli, hydra_script, sqlite_url, subprocess_env

TRY = hydra.RetryPolicy(max_attempts=3, initial_backoff=timedelta(seconds=1))


def checkout(env: TestEnvironment, failures: int) -> hydra.Workflow[Any]:
    """reserve, then charge (attempt n takes n x 120 ms; the first ``failures`` fail),
    then a 5 s sleep and ship."""
    runs = {"charge": 0}

    @hydra.workflow("checkout")
    def wf(ctx: hydra.WorkflowContext, req: None) -> str:
        hydra.step(ctx, "reserve", lambda: {"sku": "A-1"})

        def charge() -> str:
            runs["charge"] += 1
            env.clock.advance(timedelta(milliseconds=120 * runs["charge"]))
            if runs["charge"] <= failures:
                raise ConnectionError(f"payment gateway timed out (try {runs['charge']})")
            return "receipt-42"

        hydra.step(ctx, "charge", charge, retry=TRY)
        hydra.sleep(ctx, timedelta(seconds=5), name="cool-off")
        return hydra.step(ctx, "ship", lambda: "shipped")

    return env.register(wf)


def run_checkout(url: str, failures: int) -> str:
    """One checkout run to its end on the database at ``url``; its id."""
    env = TestEnvironment(store=hydra.SQLStore(url), namespace="default")
    try:
        eid = env.start(checkout(env, failures), None, max_attempts=1)
        env.run_until_complete(eid)
        return eid
    finally:
        env.store.close()


@pytest.fixture
def url(tmp_path: Path) -> str:
    return sqlite_url(tmp_path / "attempts.db")


def trace_lines(url: str, eid: str) -> list[str]:
    result = hydra_cli("trace", eid, "--db", url)
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


def rows_from(lines: list[str], first: str, count: int) -> list[str]:
    """``count`` lines from the one starting with ``first``, each cut before its bar."""
    start = next(i for i, line in enumerate(lines) if line.startswith(first))
    return [re.sub(r"\s+[█░]+$", "", line) for line in lines[start : start + count]]


#: where this file's checkout reaches its charge step, as the trace and show print it
AT_CHARGE = "at tests/cli/test_step_attempts.py:" + str(
    next(
        n
        for n, line in enumerate(Path(__file__).read_text().splitlines(), 1)
        if 'hydra.step(ctx, "charge", charge' in line
    )
)


def test_trace_lists_each_attempt_of_a_retried_step(url: str) -> None:
    eid = run_checkout(url, failures=2)
    lines = trace_lines(url, eid)
    assert rows_from(lines, "  ✔ charge", 9) == [
        "  ✔ charge       completed  3        +3.4 s    360 ms",
        '      → "receipt-42"',
        f"      {AT_CHARGE}",
        "    ✘ attempt 1  failed               +0 ms    120 ms",
        "        ConnectionError: payment gateway timed out (try 1)",
        "    ✘ attempt 2  failed              +1.1 s    240 ms",
        "        ConnectionError: payment gateway timed out (try 2)",
        "    ✔ attempt 3  completed           +3.4 s    360 ms",
        "  ☾ cool-off     slept               +3.7 s     5.0 s",
    ]
    # Steps that took one attempt have no attempt rows.
    assert sum("attempt " in line for line in lines) == 3


def test_trace_of_a_step_that_used_up_its_attempts_shows_each_error_once(url: str) -> None:
    eid = run_checkout(url, failures=3)
    lines = trace_lines(url, eid)
    assert rows_from(lines, "  ✘ charge", 8) == [
        "  ✘ charge       failed     3        +3.4 s    360 ms",
        f"      {AT_CHARGE}",
        "    ✘ attempt 1  failed               +0 ms    120 ms",
        "        ConnectionError: payment gateway timed out (try 1)",
        "    ✘ attempt 2  failed              +1.1 s    240 ms",
        "        ConnectionError: payment gateway timed out (try 2)",
        "    ✘ attempt 3  failed              +3.4 s    360 ms",
        "        ConnectionError: payment gateway timed out (try 3)",
    ]
    # The step's error is its last attempt's: shown under that attempt, not again.
    errors = [line for line in lines if line.lstrip().startswith("ConnectionError")]
    assert len(errors) == 3


EXPECTED_HISTORY = [
    {
        "number": 1,
        "status": "failed",
        "offset_ms": 0,
        "duration_ms": 120,
        "error": {"type": "ConnectionError", "message": "payment gateway timed out (try 1)"},
    },
    {
        "number": 2,
        "status": "failed",
        "offset_ms": 1_120,
        "duration_ms": 240,
        "error": {"type": "ConnectionError", "message": "payment gateway timed out (try 2)"},
    },
    {"number": 3, "status": "completed", "offset_ms": 3_360, "duration_ms": 360, "error": None},
]


@pytest.mark.parametrize("command", [["trace"], ["executions", "show"]])
def test_json_includes_every_attempt(url: str, command: list[str]) -> None:
    eid = run_checkout(url, failures=2)
    result = hydra_cli(*command, eid, "--json", "--db", url)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    steps = {s["name"]: s for s in data["steps"]}
    history = steps["charge"]["attempt_history"]
    keys = ("number", "status", "offset_ms", "duration_ms", "error")
    assert [{k: a[k] for k in keys} for a in history] == EXPECTED_HISTORY
    assert history[-1]["started_at"] == steps["charge"]["started_at"]
    assert history[-1]["completed_at"] == steps["charge"]["completed_at"]
    assert [a["number"] for a in steps["reserve"]["attempt_history"]] == [1]
    assert steps["cool-off"]["attempt_history"] == []  # a sleep has no attempts


def test_show_lists_each_attempt_with_its_error(url: str) -> None:
    eid = run_checkout(url, failures=2)
    result = hydra_cli("executions", "show", eid, "--db", url)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    start = lines.index(f"     1. charge  completed  attempts 3  took 360 ms  {AT_CHARGE}")
    assert lines[start + 1 : start + 7] == [
        '        "receipt-42"',
        "        attempt 1  failed  started 2030-01-01T00:00:00.000Z  took 120 ms",
        "          ConnectionError: payment gateway timed out (try 1)",
        "        attempt 2  failed  started 2030-01-01T00:00:01.120Z  took 240 ms",
        "          ConnectionError: payment gateway timed out (try 2)",
        "        attempt 3  completed  started 2030-01-01T00:00:03.360Z  took 360 ms",
    ]
    assert lines[start + 7].startswith("     2. cool-off  slept")


def test_a_step_stored_before_attempts_were_kept_shows_as_before(url: str) -> None:
    """Steps checkpointed by a hydra older than schema revision 0003 have no attempt
    records: the trace shows their latest attempt's error under them, as it always did."""
    eid = run_checkout(url, failures=3)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(delete(step_attempts))
    engine.dispose()
    lines = trace_lines(url, eid)
    assert rows_from(lines, "  ✘ charge", 2) == [
        "  ✘ charge   failed     3        +3.4 s    360 ms",
        "      ConnectionError: payment gateway timed out (try 3)",
    ]
    assert not any("attempt 1" in line for line in lines)
    data = json.loads(hydra_cli("trace", eid, "--json", "--db", url).stdout)
    assert [s["attempt_history"] for s in data["steps"]] == [[], []]


def test_the_console_script_shows_the_attempts(url: str, tmp_path: Path) -> None:
    eid = run_checkout(url, failures=2)
    shown = subprocess.run(
        [str(hydra_script()), "trace", eid, "--db", url],
        cwd=tmp_path,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert rows_from(lines, "    ✘ attempt 1", 2) == [
        "    ✘ attempt 1  failed               +0 ms    120 ms",
        "        ConnectionError: payment gateway timed out (try 1)",
    ]


def test_the_live_view_keeps_the_earlier_attempts_under_a_running_step(url: str) -> None:
    """``hydra dev run`` draws a step in flight as running; the attempts before it stay
    listed under it."""
    env = TestEnvironment(store=hydra.SQLStore(url), namespace="default")
    try:
        eid = env.start(checkout(env, failures=2), None, max_attempts=1)
        env.run_until_idle()
        env.advance(timedelta(seconds=1))  # attempt 2 fails too: retrying, attempt 3 next
        ex = env.execution(eid)
        now = to_ms(env.clock.now())
    finally:
        env.store.close()
    view = render.View(ex, running=render.RunningStep("charge", 3, now))
    text = render.timeline(view, now + 50, render.Style(width=100)).plain
    assert rows_from(text.splitlines(), "  ▶ charge", 6) == [
        "  ▶ charge       running    3        +1.4 s     50 ms",
        "      attempt 3 running for 50 ms",
        "    ✘ attempt 1  failed               +0 ms    120 ms",
        "        ConnectionError: payment gateway timed out (try 1)",
        "    ✘ attempt 2  failed              +1.1 s    240 ms",
        "        ConnectionError: payment gateway timed out (try 2)",
    ]
