"""The chaos run's short form (``benchmarks/chaos.py``), on SQLite and on PostgreSQL.

Three worker processes share 100 workflows of 3 steps whose bodies append to a ledger
table; meanwhile two workers are SIGKILLed (and replaced), one is SIGSTOPped until its
executions were taken over, then continued, one runs with its clock 30 s ahead
(PostgreSQL) and one is cut off from the database for 2 s (a proxy on PostgreSQL). No
server restart here (the full run, ``python benchmarks/chaos.py``, restarts PostgreSQL).
The run's checks must find nothing: every workflow completed once (on its first attempt
unless a killed or stopped worker held it), no checkpointed step ran again, re-runs only
where a process was killed or stopped, and no write from a fenced lease landed.

PostgreSQL runs when ``HYDRA_TEST_POSTGRES_URL`` is set, in the session's own schema.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BackendStoreFactory

CHAOS_SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "chaos.py"


def _load_chaos() -> Any:
    name = "hydra_benchmarks_chaos"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, CHAOS_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


chaos = _load_chaos()

pytestmark = pytest.mark.slow


def short_config(url: str, backend: str, tmp_path: Path, **changes: Any) -> Any:
    """The short form: 4 workers (0: clock 30 s ahead on PostgreSQL, 1: cut off for 2 s,
    neither ever killed or stopped; 2 and 3 are), 100 workflows of 3 steps, 2 kills and
    one stop, ``claim_timeout`` 3 s (longer than the 2 s cut: that outage must cost
    nothing)."""
    options: dict[str, Any] = {
        "workflows": 100,
        "steps": 3,
        "workers": 4,
        "concurrency": 2,
        "kill_every": 1.0,
        "max_kills": 2,
        "stop": True,
        "stop_at": 0.05,
        "claim_timeout": 3.0,
        "heartbeat": 0.3,
        "poll_interval": 0.05,
        "step_sleep": 0.05,
        "time_limit": 90,
        "work_dir": tmp_path / "work",
        "seed": 6,
        "verbose": False,
    }
    options.update(changes)
    return chaos.Config(url=url, backend=backend, **options)


def test_short_chaos_run_loses_nothing(
    sql_store_factory: BackendStoreFactory, tmp_path: Path
) -> None:
    backend = sql_store_factory.backend
    if backend == "mysql":
        pytest.skip("the chaos ledger is written for SQLite and PostgreSQL")
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path}/chaos.db"
    else:
        assert sql_store_factory.url is not None
        url = sql_store_factory.url
    cfg = short_config(url, backend, tmp_path)
    try:
        report = chaos.run_chaos(cfg)
    finally:
        if backend != "sqlite":
            chaos.drop_ledger(url, cfg.ledger)
    summary = "\n".join(report.lines())
    assert report.kills == 2, summary
    assert report.stops == 1, summary
    cuts = [f for f in report.stats["fault_log"] if "cut_off" in f]
    assert len(cuts) == 1, summary
    skews = [f for f in report.stats["fault_log"] if "clock_skew_s" in f]
    assert len(skews) == (0 if backend == "sqlite" else 1), summary
    assert report.workflows == 100
    assert not report.violations, summary
    # The stop really was past the lease: its runs were taken over and its late writes
    # were refused.
    assert report.stats["takeovers"] >= 1, summary
    zombie = report.stats["stopped_worker"]
    assert zombie["all_taken_over"], summary
    if zombie["held"]:
        assert zombie["refused"] >= 1 and zombie["accepted"] == 0, summary


def test_the_checks_catch_a_store_without_fencing(tmp_path: Path) -> None:
    """Negative control: the same run with the lease token left out of every fenced write
    (workers patched through ``HYDRA_CHAOS_BREAK_FENCING``) must be caught."""
    cfg = short_config(
        f"sqlite:///{tmp_path}/chaos.db",
        "sqlite",
        tmp_path,
        workflows=8,
        workers=2,
        max_kills=0,
        stop_at=0.0,
        claim_timeout=1.5,
        step_sleep=0.5,  # the new owner is still running when the stopped one wakes
        break_fencing=True,
    )
    report = chaos.run_chaos(cfg)
    summary = "\n".join(report.lines())
    assert report.stops == 1, summary
    assert any("accepted from a fenced lease" in v for v in report.violations), summary
    assert any("stopped worker wrote" in v for v in report.violations), summary


def test_the_checks_catch_a_worker_on_its_own_clock(
    sql_store_factory: BackendStoreFactory, tmp_path: Path
) -> None:
    """Negative control for the clock: the same run, with the worker whose clock is 30 s
    ahead comparing times on that clock (as every worker did before issue 9), must be
    caught taking over leases before they ran out (PostgreSQL, where hydra's time base is
    the server's clock)."""
    if sql_store_factory.backend != "postgres":
        pytest.skip("the time base differs from the machine's clock on a server only")
    assert sql_store_factory.url is not None
    # Only the skewed worker sees live leases as expired, and it claims pending work first:
    # it takes live leases over once the queue is empty, in a window of a few polls that a
    # run sometimes misses (no premature takeover happened, so there was nothing to catch).
    # The control needs the fault to happen: up to 3 runs, and the first with it is judged.
    for attempt in range(3):
        cfg = short_config(
            sql_store_factory.url, "postgres", tmp_path / f"run-{attempt}", local_clock=True
        )
        try:
            report = chaos.run_chaos(cfg)
        finally:
            chaos.drop_ledger(cfg.url, cfg.ledger)
        caught = [v for v in report.violations if "live leases taken over before" in v]
        if caught:
            break  # (its other violations follow from those takeovers: re-runs)
    assert caught, "\n".join(report.lines())
