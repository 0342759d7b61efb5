"""A parked execution (its code no longer matches its history, issue 14) as the CLI
shows it: ``parked`` in ``executions list``, the mismatch at the top of ``show`` and
``hydra trace``, each checkpoint's code position, ``--json``, ``executions retry``
resuming it at once, and ``hydra dev run`` counting it as not completed.

The history is written by v1 of ``order`` on a ``TestEnvironment`` over the CLI's
database (a fake clock started at the real time, so "next try" reads a few minutes
ahead); then ``order`` is "deployed" with its ``charge`` step renamed and the nap's end
replays it: parked."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import hydra
from hydra.testing import FakeClock, TestEnvironment
from hydra_cli import errors

from .helpers import hydra_cli, sqlite_url, write

HERE = Path(__file__)
NAP = timedelta(minutes=1)
CODE = {"renamed": False}


@hydra.workflow("order")
def order(ctx: hydra.WorkflowContext, _: None) -> str:
    hydra.step(ctx, "reserve", lambda: "r")
    hydra.step(ctx, "charge-card" if CODE["renamed"] else "charge", lambda: 5)
    hydra.sleep(ctx, NAP, name="nap")
    return hydra.step(ctx, "ship", lambda: "shipped")


@pytest.fixture
def url(tmp_path: Path) -> str:
    return sqlite_url(tmp_path / "parked.db")


@pytest.fixture(autouse=True)
def v1_again() -> Iterator[None]:
    yield
    CODE["renamed"] = False


def park(url: str, namespace: str = "default", *, times: int = 2) -> tuple[str, hydra.Execution]:
    """An ``order`` execution asleep on v1, then parked ``times`` times by the renamed
    code; returns its id and the execution as read after the first run (its steps)."""
    store = hydra.SQLStore(url, auto_migrate=True)
    try:
        env = TestEnvironment(store=store, namespace=namespace, clock=FakeClock(datetime.now(UTC)))
        env.register(order)
        eid = env.start(order, None)
        env.run_until_idle()
        asleep = env.engine.get_execution(eid)
        assert asleep.status == "sleeping"
        CODE["renamed"] = True  # the deploy
        env.advance(NAP)
        for _ in range(times - 1):
            env.advance(env.engine.get_execution(eid).run_at - env.clock.now())  # type: ignore[operator]
        parked = env.engine.get_execution(eid)
        assert (parked.parked, parked.parks) == (True, times), parked
        return eid, asleep
    finally:
        store.close()


def source_line(at: str) -> str:
    """The line of this file a code position (``tests/cli/test_parked.py:42``) names."""
    path, line = at.rsplit(":", 1)
    assert Path(path).resolve() == HERE.resolve(), at
    return HERE.read_text().splitlines()[int(line) - 1]


def test_list_shows_a_parked_execution_as_parked_with_its_next_try(url: str) -> None:
    eid, _ = park(url)
    result = hydra_cli("executions", "list", "--db", url)
    assert result.exit_code == 0, result.output
    (line,) = [line for line in result.stdout.splitlines() if line.startswith(eid)]
    assert line.split()[1:4] == ["order", "parked", "1/3"]  # no attempt used
    assert "parked 2 times, next try at " in line
    assert "NonDeterminismError: execution " in line
    # Not a stored status: --status pending lists it too, as parked.
    pending = hydra_cli("executions", "list", "--status", "pending", "--db", url)
    assert eid in pending.stdout and "parked" in pending.stdout

    data = json.loads(hydra_cli("executions", "list", "--json", "--db", url).stdout)
    (row,) = data
    assert (row["status"], row["parked"], row["parks"]) == ("pending", True, 2)
    assert row["error"]["type"] == "NonDeterminismError"


def test_show_opens_with_the_mismatch_and_gives_each_checkpoint_its_position(url: str) -> None:
    eid, asleep = park(url, times=1)
    result = hydra_cli("executions", "show", eid, "--db", url)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["order", "parked"]
    banner = lines[1].strip()
    assert banner.startswith(
        "parked: the code no longer matches this execution's history: execution "
        f"{eid} no longer matches its code at checkpoint 1: the history has step 'charge' (at "
    ), banner
    assert "the code did step 'charge-card'" in banner
    assert "; next try at " in banner and " (in " in banner
    assert banner.endswith(f"`hydra executions retry {eid}` resumes it now")
    assert not any(line.strip().startswith("last error") for line in lines)  # said above
    # Each checkpoint where v1 reached it: the stored position, naming this file's line.
    charge = asleep.step("charge")
    assert charge is not None and charge.at is not None
    assert "charge" in source_line(charge.at)
    (shown,) = [line for line in lines if " charge  completed" in line]
    assert shown.endswith(f"at {charge.at}")
    nap = asleep.step("nap")
    assert nap is not None and nap.at is not None and "hydra.sleep" in source_line(nap.at)
    assert any(" nap  " in line and line.endswith(f"at {nap.at}") for line in lines)


def test_trace_and_its_json_show_the_mismatch_and_the_positions(url: str) -> None:
    eid, asleep = park(url, times=1)
    result = hydra_cli("trace", eid, "--db", url)
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert text.splitlines()[0].split() == ["order", "parked"]
    assert (
        text.splitlines()[1]
        .strip()
        .startswith("parked: the code no longer matches this execution's history: ")
    )
    assert f"`hydra executions retry {eid}` resumes it now" in text
    for step in asleep.steps:
        assert f"at {step.at}" in text, (step.name, text)  # under its row

    data = json.loads(hydra_cli("trace", eid, "--json", "--db", url).stdout)
    assert (data["status"], data["parked"], data["parks"]) == ("pending", True, 1)
    assert {s["name"]: s["at"] for s in data["steps"]} == {s.name: s.at for s in asleep.steps}


def test_retry_resumes_a_parked_execution_at_once(url: str) -> None:
    eid, _ = park(url)
    result = hydra_cli("executions", "retry", eid, "--db", url)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        f"resuming {eid} (order): parked, now due at once (attempt 1, none used)"
    )
    CODE["renamed"] = False  # the fix, deployed
    store = hydra.SQLStore(url)
    try:
        engine = hydra.Engine(store)
        assert engine.get_execution(eid).run_at <= datetime.now(UTC)  # type: ignore[operator]
        # Past the nap's wake time (written on the fake clock of ``park``, minutes ahead).
        later = FakeClock(datetime.now(UTC) + timedelta(minutes=10))
        env = TestEnvironment(store=store, namespace="default", clock=later)
        env.register(order)
        assert env.run_until_idle() == 1  # due at once: no clock move
        done = env.engine.get_execution(eid)
        assert (done.status, done.output, done.attempt) == ("completed", "shipped", 1)
    finally:
        store.close()
    shown = hydra_cli("executions", "list", "--db", url).stdout
    assert "completed" in shown and "parked" not in shown


DEV_FILE = """
import hydra
from datetime import timedelta


@hydra.workflow("order")
def order(ctx: hydra.WorkflowContext, _: None) -> str:
    hydra.step(ctx, "reserve", lambda: "r")
    hydra.step(ctx, "charge-card", lambda: 5)  # renamed since the execution ran
    hydra.sleep(ctx, timedelta(minutes=1), name="nap")
    return hydra.step(ctx, "ship", lambda: "shipped")


def dev(engine: hydra.Engine) -> list[str]:
    return [{eid!r}]
"""


def test_dev_run_stops_at_a_parked_execution_and_does_not_look_successful(
    url: str, tmp_path: Path
) -> None:
    store = hydra.SQLStore(url)
    try:  # the history, asleep on v1 (not parked yet: dev run's code finds the mismatch)
        env = TestEnvironment(store=store, namespace="default", clock=FakeClock(datetime.now(UTC)))
        env.register(order)
        eid = env.start(order, None)
        env.run_until_idle()
    finally:
        store.close()
    file = write(tmp_path / "shop.py", DEV_FILE.format(eid=eid))
    result = hydra_cli("dev", "run", str(file), "--fast-forward", "--db", url)
    assert result.exit_code == errors.EXIT_NOT_COMPLETED, result.output
    out = result.stdout
    assert f"{eid[:8]}  order  parked: parked once, next try at " in out
    assert "1 of 1 executions did not complete (1 parked: the code no longer matches" in out
    (summary,) = [line for line in out.splitlines() if line.strip().startswith("parked ")]
    assert eid in summary and "NonDeterminismError" in summary


@pytest.mark.parametrize("backend", ["postgres", "mysql"])
def test_list_and_show_on_a_database_server(backend: str, store_urls: Any) -> None:
    server = store_urls.url(backend)  # this session's own schema or database on it
    ns = f"parked-{uuid.uuid4().hex[:10]}"
    eid, asleep = park(server, ns, times=1)
    listed = hydra_cli("executions", "list", "--db", server, "--namespace", ns)
    assert listed.exit_code == 0, listed.output
    (line,) = [line for line in listed.stdout.splitlines() if line.startswith(eid)]
    assert line.split()[2] == "parked" and "parked once, next try at " in line
    shown = hydra_cli("executions", "show", eid, "--db", server, "--namespace", ns)
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.splitlines()[1].strip().startswith("parked: the code no longer matches")
    data: dict[str, Any] = json.loads(
        hydra_cli("executions", "show", eid, "--json", "--db", server, "--namespace", ns).stdout
    )
    assert data["parked"] is True
    assert [s["at"] for s in data["steps"]] == [s.at for s in asleep.steps]
