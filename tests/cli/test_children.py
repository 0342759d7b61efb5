"""Child workflows and parallel steps in the CLI: what ``hydra trace``, ``hydra executions
list --parent``/``show`` and ``hydra dev run`` say about children, their parents, their
ends, and steps that run at once (``hydra.gather``)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import hydra
from hydra.records import Execution
from hydra_cli import childview, render
from hydra_cli.dev import LiveObserver
from hydra_cli.render import RunningStep, Style, View
from tests.conftest import BackendStoreFactory

from .helpers import engine_on, hydra_cli, sqlite_url, write

HOUR = timedelta(hours=1)


@hydra.workflow("ship")
def ship(ctx: hydra.WorkflowContext, warehouse: str) -> str:
    """``bad`` fails at once; ``slow`` waits for a message on ``go`` first."""
    if warehouse == "bad":
        raise hydra.NonRetryableError(f"nothing left in {warehouse}")
    if warehouse == "slow":
        hydra.receive(ctx, "go")
    return hydra.step(ctx, "label", lambda: f"L-{warehouse}")


@hydra.workflow("split")
def split(ctx: hydra.WorkflowContext, warehouses: list[str]) -> list[str]:
    """One child per warehouse, waited for in turn (a failed child's error kept)."""
    handles = [hydra.start_child(ctx, f"ship-{w}", ship, w) for w in warehouses]
    out = []
    for handle in handles:
        try:
            out.append(hydra.wait_child(ctx, handle, result_type=str, timeout=HOUR))
        except hydra.ChildFailedError as exc:
            out.append(f"lost: {exc.status}")
    return out


# Both steps of the gather are inside their bodies at once (each waits for the other), so
# their stored intervals overlap whatever the machine's speed.
BOTH_IN = threading.Barrier(2)


def _meet(value: int) -> Callable[[], int]:
    def body() -> int:
        BOTH_IN.wait(timeout=10)
        time.sleep(0.05)
        return value

    return body


@hydra.workflow("fan")
def fan(ctx: hydra.WorkflowContext, _: None) -> dict[str, int]:
    return hydra.gather(ctx, {"left": _meet(1), "right": _meet(2)})


def run_until(url: str, ns: str, eid: str, done: Callable[[Execution], bool]) -> Execution:
    """Run a worker of every workflow here until ``done`` holds of the execution (read
    again after the worker stopped: a run claimed just before can outlive shutdown)."""
    with engine_on(url, ns) as engine:
        deadline = time.monotonic() + 20
        with hydra.Worker(engine, poll_interval=0.01) as worker:
            for wf in (ship, split, fan):
                worker.register(wf)
            while not done(engine.get_execution(eid)):
                assert time.monotonic() < deadline, engine.get_execution(eid)
                time.sleep(0.01)
        while not done(execution := engine.get_execution(eid)):
            assert time.monotonic() < deadline, execution
            time.sleep(0.01)
        return execution


def children_of(execution: Execution) -> dict[str, str]:
    """start checkpoint name -> child id."""
    return {s.name: s.detail["child"] for s in execution.steps if s.kind == "child"}


def waiting_for_slow(url: str, ns: str = "default") -> tuple[str, dict[str, str]]:
    """A ``split`` parent that got the ends of ``north`` (completed) and ``bad`` (failed)
    and now waits for ``slow`` (waiting for a message)."""
    with engine_on(url, ns) as engine:
        eid = engine.start_workflow(split, ["north", "bad", "slow"], max_attempts=1)
    parent = run_until(
        url,
        ns,
        eid,
        lambda ex: (
            ex.status == "sleeping"
            and ex.wait_topic == f"hydra.child:{children_of(ex).get('ship-slow')}"
        ),
    )
    return eid, children_of(parent)


@pytest.fixture
def url(tmp_path: Path) -> str:
    result = hydra_cli("migrate", "--db", sqlite_url(tmp_path / "kids.db"))
    assert result.exit_code == 0, result.output
    return sqlite_url(tmp_path / "kids.db")


def trace(*args: str) -> str:
    result = hydra_cli("trace", *args)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_trace_of_a_parent_shows_its_children_their_ends_and_what_it_waits_for(url: str) -> None:
    eid, kids = waiting_for_slow(url)
    north, bad, slow = (kids[f"ship-{w}"] for w in ("north", "bad", "slow"))
    out = trace(eid[:8], "--db", url)
    # The header: which child it waits for, not the reserved topic.
    assert f"now        waiting for child {slow[:8]} (ship) until " in out
    assert "hydra.child:" not in out
    # The start rows: the child, its workflow, its status now.
    assert f"started child {north[:8]} (ship), now completed" in out
    assert f"started child {bad[:8]} (ship), now failed" in out
    assert f"started child {slow[:8]} (ship), now sleeping" in out
    # The wait rows: the child's output, the child's error, what is still awaited.
    assert f'child {north[:8]} completed → "L-north"' in out
    assert f"child {bad[:8]} failed: NonRetryableError: nothing left in bad" in out
    assert f"waiting for child {slow[:8]} (ship) until " in out
    # The children section, with the commands that trace them on the same database.
    section = out[out.index("  children (3)") :]
    for child, status in ((north, "completed"), (bad, "failed"), (slow, "sleeping")):
        assert f"    {child[:8]}  ship  {status:<9}  hydra trace {child} --db {url}\n" in section
    # The children's ends are labelled, not shown as raw messages.
    messages = out[out.index("  messages sent to it (2)") :]
    assert f"end of child {bad[:8]}" in messages
    assert "→ failed: NonRetr" in messages  # cut to the terminal's width
    assert f"end of child {north[:8]}" in messages and 'completed → "L-north"' in messages


def test_trace_of_a_child_names_its_parent(url: str) -> None:
    eid, kids = waiting_for_slow(url)
    out = trace(kids["ship-slow"], "--db", url)
    assert f"  parent     {eid}  (split, sleeping)\n" in out
    assert "trigger" not in out  # the parent line says it
    data = json.loads(trace(kids["ship-slow"], "--db", url, "--json"))
    assert data["parent_id"] == eid
    assert data["parent"] == {"id": eid, "workflow": "split", "status": "sleeping", "error": None}


def test_a_cancelled_child_ends_its_parents_wait(url: str) -> None:
    eid, kids = waiting_for_slow(url)
    slow = kids["ship-slow"]
    cancelled = hydra_cli("executions", "cancel", slow, "--db", url)
    assert cancelled.exit_code == 0, cancelled.output
    run_until(url, "default", eid, lambda ex: ex.terminal)
    out = trace(eid, "--db", url)
    assert f"child {slow[:8]} cancelled" in out
    assert f"    {slow[:8]}  ship  cancelled  hydra trace {slow}" in out
    data = json.loads(trace(eid, "--db", url, "--json"))
    assert data["output"] == ["L-north", "lost: failed", "lost: cancelled"]
    ends = {m["child_end"]["child"]: m["child_end"] for m in data["messages"]}
    assert ends[slow]["status"] == "cancelled"
    assert ends[kids["ship-north"]] == {
        "child": kids["ship-north"], "status": "completed", "output": "L-north", "error": None,
    }  # fmt: skip
    assert ends[kids["ship-bad"]]["error"] == {
        "type": "NonRetryableError", "message": "nothing left in bad",
    }  # fmt: skip


def test_executions_list_parent_and_show(url: str) -> None:
    eid, kids = waiting_for_slow(url)
    listed = hydra_cli("executions", "list", "--parent", eid[:8], "--db", url)
    assert listed.exit_code == 0, listed.output
    rows = listed.stdout.splitlines()[1:]
    assert sorted(row.split()[0] for row in rows) == sorted(kids.values())
    assert eid not in listed.stdout
    as_json = hydra_cli("executions", "list", "--parent", eid, "--json", "--db", url)
    assert {d["parent_id"] for d in json.loads(as_json.stdout)} == {eid}
    everything = json.loads(hydra_cli("executions", "list", "--json", "--db", url).stdout)
    assert {d["id"]: d["parent_id"] for d in everything}[eid] is None
    none = hydra_cli("executions", "list", "--parent", kids["ship-north"], "--db", url)
    assert none.stdout == f"no children of {kids['ship-north']}\n"
    unknown = hydra_cli("executions", "list", "--parent", "nope", "--db", url)
    assert unknown.exit_code != 0 and "no execution 'nope'" in unknown.stderr

    shown = hydra_cli("executions", "show", eid, "--db", url)
    assert shown.exit_code == 0, shown.output
    out = shown.stdout
    assert f"started child {kids['ship-north']} (ship)" in out
    assert f"child {kids['ship-bad']} failed, at " in out
    assert f"waiting for child {kids['ship-slow']}, until " in out
    assert "  children (3)\n" in out
    assert f"    {kids['ship-bad']}  ship  failed  started by ship-bad\n" in out
    assert f"    end of child {kids['ship-bad']}  sent " in out
    data = json.loads(hydra_cli("executions", "show", eid, "--json", "--db", url).stdout)
    assert [(c["started_by"], c["id"], c["status"]) for c in data["children"]] == [
        ("ship-north", kids["ship-north"], "completed"),
        ("ship-bad", kids["ship-bad"], "failed"),
        ("ship-slow", kids["ship-slow"], "sleeping"),
    ]
    child = hydra_cli("executions", "show", kids["ship-north"][:8], "--db", url).stdout
    assert f"  parent     {eid}  (split, sleeping)" in child


def test_children_on_every_database(sql_store_factory: BackendStoreFactory, tmp_path: Path) -> None:
    backend = sql_store_factory.backend
    url = sql_store_factory.url if backend != "sqlite" else sqlite_url(tmp_path / "k.db")
    assert url is not None
    hydra.SQLStore(url, auto_migrate=True).close()
    ns = f"cli-kids-{uuid.uuid4().hex[:10]}"
    eid, kids = waiting_for_slow(url, ns)
    slow = kids["ship-slow"]
    out = trace(eid, "--db", url, "-n", ns)
    assert f"waiting for child {slow[:8]} (ship)" in out
    assert f"child {kids['ship-bad'][:8]} failed: NonRetryableError" in out
    assert f"hydra trace {slow} --namespace {ns} --db " in out
    listed = hydra_cli("executions", "list", "--parent", eid[:8], "-n", ns, "--db", url)
    assert sorted(r.split()[0] for r in listed.stdout.splitlines()[1:]) == sorted(kids.values())
    assert f"  parent     {eid}  (split, sleeping)" in trace(slow, "-n", ns, "--db", url)


def _bar_columns(out: str, name: str) -> set[int]:
    """The columns the bar of step ``name`` covers in a trace."""
    line = next(line for line in out.splitlines() if line.startswith(f"  ✔ {name} "))
    return {i for i, ch in enumerate(line) if ch == "█"}


def test_steps_run_at_once_overlap_on_the_time_axis(url: str) -> None:
    with engine_on(url) as engine:
        eid = engine.start_workflow(fan, None, max_attempts=1)
    run_until(url, "default", eid, lambda ex: ex.terminal)
    result = hydra_cli("trace", eid, "--db", url)
    assert result.exit_code == 0, result.output
    left, right = _bar_columns(result.stdout, "left"), _bar_columns(result.stdout, "right")
    assert left & right, result.stdout


def test_the_live_view_shows_every_step_in_flight(url: str) -> None:
    with engine_on(url) as engine:
        eid = engine.start_workflow(fan, None, max_attempts=1)
        execution = engine.get_execution(eid)
    now = execution.created_at.timestamp() * 1000
    start = int(now) + 10
    running = (RunningStep("left", 1, start), RunningStep("right", 1, start + 5))
    view = View(execution, running=running[0], running_steps=running)
    frame = render.timeline(view, start + 1000, Style(unicode=False, width=120)).plain
    rows = [line for line in frame.splitlines() if line.startswith("  > ")]
    assert [row.split()[1:3] for row in rows] == [["left", "running"], ["right", "running"]]
    data = render.execution_data(view, start + 1000)
    assert [r["name"] for r in data["running_steps"]] == ["left", "right"]


class _Run:
    """What LiveObserver reads of a run in flight with two steps inside their bodies."""

    execution_id = "e1"
    lost = False
    running_steps = ("left", "right")
    steps: dict[str, Any] = {}


def test_the_dev_observer_reports_every_running_step() -> None:
    observer = LiveObserver()
    observer._runs["e1"] = _Run()  # type: ignore[assignment]
    found = observer.running("e1", 1000)
    assert [(r.name, r.attempt, r.since_ms) for r in found] == [
        ("left", 1, 1000),
        ("right", 1, 1000),
    ]
    assert observer.running("unknown", 1000) == ()


DEV_FILE = """
import hydra
from tests.cli.test_children import ship, split

def dev(engine):
    return [engine.start_workflow(split, ["north", "bad"], max_attempts=1)]
"""


def test_dev_run_progress_lines_for_child_starts_and_waits(tmp_path: Path) -> None:
    file = write(tmp_path / "kids.py", DEV_FILE)
    result = hydra_cli("dev", "run", str(file), "--db", sqlite_url(tmp_path / "d.db"))
    assert result.exit_code == 0, result.output
    out = result.stdout
    lines = [line.split("  ", 2)[2] for line in out.splitlines() if "  split  " in line]
    assert any(line.startswith("child ship-north: started child ") for line in lines), out
    assert any(
        line.startswith("wait wait-ship-north completed: child ")
        and line.endswith(' completed → "L-north"')
        for line in lines
    ), out
    assert any(
        line.startswith("wait wait-ship-bad completed: child ")
        and line.endswith(" failed: NonRetryableError: nothing left in bad")
        for line in lines
    ), out


def test_more_children_than_listed_name_the_command_that_lists_them(url: str) -> None:
    with engine_on(url) as engine:
        eid = engine.start_workflow(split, ["north"], max_attempts=1)
    done = run_until(url, "default", eid, lambda ex: ex.terminal)
    view = View(done)
    view.children = {}
    text = childview.section(view, Style(), lambda c: f"trace {c}", "list them").plain
    assert "  children (1)\n" in text and "    … and" not in text
    starts = [
        replace(done.steps[0], name=f"s{i}", detail={"child": f"{i:08d}-x", "workflow": "ship"})
        for i in range(childview.CHILDREN_SHOWN + 3)
    ]
    view = View(replace(done, steps=starts))
    text = childview.section(view, Style(), lambda c: f"trace {c}", "list them").plain
    assert f"  children ({childview.CHILDREN_SHOWN + 3})\n" in text
    assert text.endswith("    … and 3 more: list them\n")
    assert text.count("trace ") == childview.CHILDREN_SHOWN
