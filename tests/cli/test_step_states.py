"""One vocabulary for sleep states: ``execution.steps``, ``hydra trace``, ``executions show``
and ``--json`` say the same (``sleeping``, ``slept``, ``cancelled``), and an overdue sleep
says that no worker has picked it up."""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

import hydra
from hydra.status import StepStatus
from hydra.store.base import NewExecution, StepRow

from .helpers import engine_on, hydra_cli, sqlite_url


@hydra.workflow("napper")
def napper(ctx: hydra.WorkflowContext, hours: float) -> str:
    hydra.step(ctx, "before", lambda: "ok")
    hydra.sleep(ctx, timedelta(hours=hours), name="nap")
    return hydra.step(ctx, "after", lambda: "woke")


@pytest.fixture
def url(tmp_path: Path) -> str:
    return sqlite_url(tmp_path / "states.db")


def run_until(url: str, eid: str, *statuses: str) -> hydra.Execution:
    with engine_on(url) as engine, hydra.Worker(engine, poll_interval=0.01) as worker:
        worker.register(napper)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            ex = engine.get_execution(eid)
            if ex.status in statuses:
                return ex
            time.sleep(0.01)
    raise AssertionError(f"{eid} did not reach {statuses}")


def start(url: str, hours: float) -> str:
    with engine_on(url) as engine:
        return engine.start_workflow("napper", hours)


def nap_everywhere(url: str, eid: str) -> dict[str, str]:
    """The nap's status as each reader tells it."""
    with engine_on(url) as engine:
        nap = engine.get_execution(eid).step("nap")
    assert nap is not None
    trace = hydra_cli("trace", eid, "--db", url).stdout
    trace_line = next(line for line in trace.splitlines() if "☾ nap" in line or "⊘ nap" in line)
    show = hydra_cli("executions", "show", eid, "--db", url).stdout
    show_line = next(line for line in show.splitlines() if ". nap  " in line)
    traced = json.loads(hydra_cli("trace", eid, "--json", "--db", url).stdout)
    shown = json.loads(hydra_cli("executions", "show", eid, "--json", "--db", url).stdout)
    return {
        "execution.steps": nap.status.value,
        "trace": trace_line.split()[2],
        "show": show_line.split()[2],
        "trace --json": next(s["status"] for s in traced["steps"] if s["name"] == "nap"),
        "show --json": next(s["status"] for s in shown["steps"] if s["name"] == "nap"),
    }


def test_a_finished_sleep_reads_slept_everywhere(url: str) -> None:
    eid = start(url, 0.05 / 3600)  # 50 ms
    run_until(url, eid, "completed")
    assert set(nap_everywhere(url, eid).values()) == {"slept"}


def test_a_sleep_cut_short_by_a_cancel_reads_cancelled_everywhere(url: str) -> None:
    eid = start(url, 48)
    run_until(url, eid, "sleeping")
    assert set(nap_everywhere(url, eid).values()) == {"sleeping"}
    with engine_on(url) as engine:
        assert engine.cancel(eid)
    assert set(nap_everywhere(url, eid).values()) == {"cancelled"}
    trace = hydra_cli("trace", eid, "--db", url).stdout
    assert "until " in trace and "the execution was cancelled before its wake time" in trace
    nap_line = next(line for line in trace.splitlines() if "⊘ nap" in line)
    assert "48h" not in nap_line  # its span ends at the cancel, not at the wake time
    data = json.loads(hydra_cli("trace", eid, "--json", "--db", url).stdout)
    nap = next(s for s in data["steps"] if s["name"] == "nap")
    assert nap["kind"] == "sleep" and nap["duration_ms"] < 60_000
    assert nap["wake_at"] is not None


def overdue_sleep(url: str, overdue: timedelta) -> str:
    """An execution asleep since an hour ago, whose wake time passed ``overdue`` ago, and
    no worker running: written through the store, as a worker that then stopped would."""
    with engine_on(url) as engine:
        store, ns, now = engine.store, engine.namespace, engine.clock.now_ms()
        slept_at = now - 3_600_000
        wake = now - int(overdue.total_seconds() * 1000)
        new = NewExecution(
            str(uuid.uuid4()), ns, "napper", b"1", 3, 1000, None, None, slept_at, slept_at
        )
        eid, _ = store.create_execution(new)
        (claim,) = store.claim(ns, ["napper"], "w-1", now_ms=slept_at, lease_ms=60_000, limit=1)
        nap = StepRow(
            eid, "nap", 0, StepStatus.SLEEPING, 1, str(wake).encode(), None, None, slept_at, wake
        )
        store.suspend(claim.lease, wake_at_ms=wake, now_ms=slept_at, step=nap)
    return eid


def test_an_overdue_sleep_says_no_worker_has_picked_it_up(url: str) -> None:
    eid = overdue_sleep(url, timedelta(minutes=4))
    # Each CLI call is a process of its own, a second or more on a slow machine: the
    # overdue time grows by the seconds between them (CI once saw "4m 01s").
    hint = re.compile(r"\(due 4m \d\ds ago, waiting for a worker that runs napper\)")
    assert set(nap_everywhere(url, eid).values()) == {"sleeping"}
    trace = hydra_cli("trace", eid, "--db", url).stdout
    now_line = next(line for line in trace.splitlines() if line.startswith("  now "))
    assert hint.search(now_line), now_line
    nap_detail = trace.splitlines()[
        next(i for i, line in enumerate(trace.splitlines()) if "☾ nap" in line) + 1
    ]
    assert nap_detail.strip().startswith("until ") and hint.search(nap_detail), nap_detail
    listed = hydra_cli("executions", "list", "--db", url).stdout
    assert hint.search(listed), listed


def test_a_sleep_still_to_come_says_when(url: str) -> None:
    eid = start(url, 48)
    run_until(url, eid, "sleeping")
    trace = hydra_cli("trace", eid, "--db", url).stdout
    assert "(in 47h 59m)" in trace and "waiting for a worker" not in trace


def test_an_overdue_retry_says_no_worker_has_picked_it_up(url: str) -> None:
    with engine_on(url) as engine:
        store, ns, now = engine.store, engine.namespace, engine.clock.now_ms()
        failed_at = now - 600_000
        new = NewExecution(
            str(uuid.uuid4()), ns, "napper", b"1", 3, 1000, None, None, failed_at, failed_at
        )
        eid, _ = store.create_execution(new)
        (claim,) = store.claim(ns, ["napper"], "w-1", now_ms=failed_at, lease_ms=60_000, limit=1)
        store.schedule_retry(
            claim.lease,
            run_at_ms=now - 240_000,
            error_type="RuntimeError",
            error_message="boom",
            now_ms=failed_at,
        )
    listed = hydra_cli("executions", "list", "--db", url).stdout
    line = next(line for line in listed.splitlines() if line.startswith(eid))
    assert "attempt 2 at " in line
    # (the CLI's process starts a second or more after ``now`` on a slow machine)
    assert re.search(r"\(due 4m \d\ds ago, waiting for a worker that runs napper\)$", line), line
